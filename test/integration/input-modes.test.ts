/**
 * One training function for both input modes: the run's data (`tfos run --data PATH --epochs E`,
 * TFCluster.run's `data`) reaches `TFNode.dataFeed(ctx)` with no options — read by the trainers
 * themselves in InputMode.TENSORFLOW, fed by Spark in InputMode.SPARK — and a function that asks
 * for data where none was given gets an error naming the flag to add. Embedded local Spark.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generatedCifarSet } from '../../lib/io/cifar10';
import { resolveLocation } from '../../lib/io/dataset-fs';
import { writeCifarDataset } from '../../lib/io/dataset';
import { InputMode } from '../../lib/protocol/input-mode';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { arrowPython, tempDir } from '../support/cifar-fixture';
import { rejection } from '../support/rejection';

const countRows = path.resolve(__dirname, '../../../test/fixtures/modules/count-rows.js');
const ROWS = 600;

interface Count {
  rows: number;
  idSum: number;
  inputMode: string;
  data?: { path: string; epochs: number };
}

describe('one training function for both input modes (--data PATH --epochs E)', function () {
  // Each case starts a Spark application and a cluster; the shared 2-core machine can be slow.
  this.timeout(15 * 60_000);
  this.timeout(420_000);
  let dir: string;
  let train: string;
  before(async function () {
    const python = arrowPython();
    // Spark reads the Parquet copy; pyarrow comes with `tfos setup`, so its absence is a broken setup.
    if (!python) throw new Error("no Python with pyarrow (the Parquet writer): run 'node bin/tfos.js setup'");
    dir = tempDir('tfos-modes-');
    await writeCifarDataset(generatedCifarSet(ROWS, { seed: 5, testRecords: 10 }), resolveLocation(path.join(dir, 'cifar')), {
      partitions: 3,
      batchRows: 50,
      parquet: { python },
    });
    train = path.join(dir, 'cifar', 'train');
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  const idSum = (ROWS * (ROWS - 1)) / 2;
  for (const mode of [InputMode.TENSORFLOW, InputMode.SPARK]) {
    it(`InputMode.${mode.toUpperCase()}: every row reaches the workers once per epoch, and ctx.data names the data`, async () => {
      const handle = await TFCluster.run({
        module: countRows,
        numExecutors: 2,
        inputMode: mode,
        data: train,
        epochs: 2,
        via: { local: {} },
        reservationTimeout: 180,
      });
      const counts = [...(await handle.shutdown({ timeout: 300 })).values()] as Count[];
      expect(counts).to.have.length(2);
      expect(counts.reduce((a, c) => a + c.rows, 0)).to.equal(2 * ROWS);
      expect(counts.reduce((a, c) => a + c.idSum, 0)).to.equal(2 * idSum);
      for (const c of counts) {
        expect(c.rows).to.be.above(0);
        expect(c.inputMode).to.equal(mode);
        expect(c.data).to.deep.equal({ path: train, epochs: 2 });
      }
    });

    it(`InputMode.${mode.toUpperCase()}: asking for data when the run was given none fails with the flag to add, no hang`, async () => {
      const handle = await TFCluster.run({
        module: countRows,
        numExecutors: 1,
        inputMode: mode,
        via: { local: {} },
        reservationTimeout: 180,
      });
      const err = await rejection(handle.shutdown({ timeout: 120 }));
      expect(err.message).to.contain('add --data PATH');
      expect(err.message).to.contain('chief:0');
    });
  }

  it('TFCluster.run refuses epochs without data, and a non-positive epochs', async () => {
    expect((await rejection(TFCluster.run({ module: countRows, numExecutors: 1, epochs: 2 }))).message).to.contain('epochs needs data');
    expect((await rejection(TFCluster.run({ module: countRows, numExecutors: 1, data: train, epochs: 0 }))).message).to.contain(
      'epochs must be a positive integer',
    );
  });
});
