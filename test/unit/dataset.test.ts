import { expect } from 'chai';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Table } from 'apache-arrow';
import { CifarSourceSet, findCifarFiles, generatedCifarSet } from '../../lib/io/cifar10';
import { LocalFs, resolveLocation } from '../../lib/io/dataset-fs';
import { DatasetInfo, planShard, readManifest, shardRange, SplitManifest, stepsPerEpoch, writeCifarDataset } from '../../lib/io/dataset';
import { dataCommand } from '../../lib/cli/data-command';
import { DataFeed } from '../../lib/node/data-feed';
import {
  arrowPython,
  generatedRecord,
  parquetRowCount,
  setLabel,
  stagingLeftovers,
  tempDir,
  truncateFile,
  writeCifarFixture,
} from '../support/cifar-fixture';
import { rejection } from '../support/rejection';

const SEED = 5;
const TRAIN = 1000;
const TEST = 200;

/** Rows of a table as CIFAR records keyed by id. */
function records(t: Table): { id: number; record: Buffer }[] {
  const ids = t.getChild('id')!;
  const labels = t.getChild('label')!;
  const images = t.getChild('image')!;
  const out: { id: number; record: Buffer }[] = [];
  for (let i = 0; i < t.numRows; i++) {
    out.push({
      id: Number(ids.get(i)),
      record: Buffer.concat([Buffer.from([labels.get(i) as number]), Buffer.from(images.get(i) as Uint8Array)]),
    });
  }
  return out;
}

async function quiet<T>(fn: () => Promise<T>): Promise<T> {
  const log = console.log;
  const write = process.stderr.write;
  console.log = () => {};
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return await fn();
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
}

describe('partitioned CIFAR dataset (local)', function () {
  let root: string;
  let dest: string;
  let set: CifarSourceSet;
  const python = arrowPython();

  before(async () => {
    // pyarrow comes with `tfos setup`; its absence is a broken setup, not a reason to skip.
    if (!python) throw new Error("no Python with pyarrow (the Parquet writer): run 'node bin/tfos.js setup'");
    root = tempDir('tfos-dataset-');
    dest = path.join(root, 'cifar');
    set = generatedCifarSet(TRAIN, { testRecords: TEST, seed: SEED });
    await writeCifarDataset(set, resolveLocation(dest), { partitions: 4, batchRows: 64, parquet: python ? { python } : false });
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('writes DEST/{train,test} with Parquet parts, Arrow parts under _arrow/ and manifests', async () => {
    const info = JSON.parse(fs.readFileSync(path.join(dest, '_dataset.json'), 'utf8')) as DatasetInfo;
    expect(info.splits).to.deep.equal({
      train: { path: 'train', rows: TRAIN, partitions: 4 },
      test: { path: 'test', rows: TEST, partitions: 4 },
    });
    const m = await readManifest(new LocalFs(), path.join(dest, 'train'));
    expect(m.rows).to.equal(TRAIN);
    expect(m.partitions.map((p) => p.rows)).to.deep.equal([250, 250, 250, 250]);
    expect(m.partitions.map((p) => p.firstId)).to.deep.equal([0, 250, 500, 750]);
    expect(m.partitions[0].arrow.batches.map((b) => b.rows)).to.deep.equal([64, 64, 64, 58]);
    expect(m.partitions.reduce((a, p) => a + p.labelCounts.reduce((x, y) => x + y, 0), 0)).to.equal(TRAIN);
    const names = fs.readdirSync(path.join(dest, 'train')).sort();
    expect(names).to.include.members(['_SUCCESS', '_arrow', '_manifest.json']);
    expect(fs.readdirSync(path.join(dest, 'train', '_arrow')).sort()).to.deep.equal([
      'part-00000.arrow',
      'part-00001.arrow',
      'part-00002.arrow',
      'part-00003.arrow',
    ]);
    if (python) expect(names.filter((n) => n.endsWith('.parquet'))).to.have.length(4);
    // The content checksum is the SHA-256 of the CIFAR records themselves.
    const first = createHash('sha256');
    for (let i = 0; i < 250; i++) first.update(generatedRecord(SEED, i));
    expect(m.partitions[0].contentSha256).to.equal(first.digest('hex'));
    expect(stagingLeftovers(root, 'cifar')).to.deep.equal([]);
  });

  for (const shuffle of [false, true]) {
    it(`feeds every record exactly once per epoch across 2 shards × 2 epochs${shuffle ? ' (shuffled)' : ''}`, async () => {
      const m = await readManifest(new LocalFs(), path.join(dest, 'train'));
      const counts = new Array<number>(TRAIN).fill(0);
      const orders: number[][] = [];
      const labelSum = [0, 0];
      for (let shard = 0; shard < 2; shard++) {
        const feed = await DataFeed.fromDataset(path.join(dest, 'train'), {
          shard,
          numShards: 2,
          epochs: 2,
          shuffle,
          seed: 11,
          prefetch: 3,
        });
        expect(feed.info?.shardRows).to.equal(500);
        const perEpoch = [0, 0];
        const order: number[] = [];
        let t: Table | null;
        while ((t = await feed.nextBatch(48))) {
          expect(t.numRows).to.be.at.most(48);
          for (const { id, record } of records(t)) {
            expect(id).to.be.within(shard * 500, shard * 500 + 499);
            expect(record.equals(generatedRecord(SEED, id)), `record ${id}`).to.equal(true);
            counts[id]++;
            perEpoch[feed.epoch]++;
            labelSum[feed.epoch] += record[0];
            if (feed.epoch === 0) order.push(id);
          }
        }
        expect(feed.shouldStop()).to.equal(true);
        expect(perEpoch).to.deep.equal([500, 500]);
        orders.push(order);
      }
      expect(counts.every((c) => c === 2)).to.equal(true);
      const expectedLabelSum = m.partitions.reduce((a, p) => a + p.labelCounts.reduce((x, n, l) => x + n * l, 0), 0);
      expect(labelSum).to.deep.equal([expectedLabelSum, expectedLabelSum]);
      const sorted = orders[0].every((id, i) => i === 0 || id > orders[0][i - 1]);
      expect(sorted).to.equal(!shuffle);
    });
  }

  it('splits uneven rows so shards differ by at most one and agree on steps per epoch', async () => {
    const m = await readManifest(new LocalFs(), path.join(dest, 'train'));
    expect([0, 1, 2].map((s) => shardRange(1000, s, 3))).to.deep.equal([
      [0, 333],
      [333, 666],
      [666, 1000],
    ]);
    expect(stepsPerEpoch(1000, 3, 64)).to.equal(5); // floor(333 / 64)
    expect(stepsPerEpoch(50_000, 4, 128)).to.equal(97);
    // Plans cover each row once and only fetch the record batches they need.
    let covered = 0;
    for (let s = 0; s < 3; s++) {
      const units = planShard(m, s, 3);
      covered += units.reduce((a, u) => a + (u.to - u.from), 0);
      expect(units[0].firstId + units[0].from).to.equal(shardRange(1000, s, 3)[0]);
    }
    expect(covered).to.equal(1000);
    // A synchronous trainer: stepsPerEpoch full batches, then endEpoch() skips the shard's rest.
    const steps = stepsPerEpoch(m.rows, 3, 64);
    for (let s = 0; s < 3; s++) {
      const feed = await DataFeed.fromDataset(path.join(dest, 'train'), { shard: s, numShards: 3, epochs: 2 });
      for (let e = 0; e < 2; e++) {
        for (let k = 0; k < steps; k++) {
          const t = await feed.nextBatch(64);
          expect(t?.numRows).to.equal(64);
          expect(feed.epoch).to.equal(e);
        }
        expect(await feed.endEpoch()).to.equal(feed.info!.shardRows - steps * 64);
      }
      expect(await feed.nextBatch(64)).to.equal(null);
    }
  });

  it('writes Parquet that pyarrow (as Spark would) reads with the same rows and types', function () {
    const train = parquetRowCount(python!, path.join(dest, 'train'));
    expect(train.rows).to.equal(TRAIN);
    expect(train.columns).to.deep.equal(['id', 'label', 'image']);
    expect(train.types).to.deep.equal(['int64', 'int32', 'binary']);
    expect(parquetRowCount(python!, path.join(dest, 'test')).rows).to.equal(TEST);
  });

  it('refuses an existing destination unless told to overwrite it', async () => {
    const err = await rejection(writeCifarDataset(generatedCifarSet(20, { seed: 1 }), resolveLocation(dest), { parquet: false }));
    expect(err.message).to.match(/already exists \(use --overwrite/);
    const other = path.join(root, 'again');
    await writeCifarDataset(generatedCifarSet(20, { seed: 1 }), resolveLocation(other), { parquet: false, partitions: 2 });
    await writeCifarDataset(generatedCifarSet(30, { seed: 1 }), resolveLocation(other), { parquet: false, partitions: 2, overwrite: true });
    expect((await readManifest(new LocalFs(), path.join(other, 'train'))).rows).to.equal(30);
    expect(stagingLeftovers(root, 'again')).to.deep.equal([]);
  });

  describe('bad input leaves nothing behind', () => {
    let src: string;
    beforeEach(async () => {
      src = tempDir('tfos-cifar-src-');
      await writeCifarFixture(src, 100, { test: 20, seed: 9 });
    });
    afterEach(() => fs.rmSync(src, { recursive: true, force: true }));

    it('a truncated file: error names file, record and offset; no DEST', async () => {
      truncateFile(path.join(src, 'data_batch_3.bin'), 19 * 3073 + 1021);
      const out = path.join(root, 'trunc');
      const err = await rejection(
        writeCifarDataset(findCifarFiles(src).set!, resolveLocation(out), { parquet: python ? { python } : false }),
      );
      expect(err.message).to.equal(`data_batch_3.bin: record 19 at byte ${19 * 3073} is truncated (1021 of 3073 bytes)`);
      expect(fs.existsSync(out)).to.equal(false);
      expect(stagingLeftovers(root, 'trunc')).to.deep.equal([]);
    });

    it('a label > 9 midway: error names file, record and offset; partitions already written are removed', async () => {
      setLabel(path.join(src, 'data_batch_4.bin'), 13, 10);
      const out = path.join(root, 'badlabel');
      let written = 0;
      const err = await rejection(
        writeCifarDataset(findCifarFiles(src).set!, resolveLocation(out), {
          partitions: 10,
          parquet: python ? { python } : false,
          onPartition: () => void written++,
        }),
      );
      expect(err.message).to.equal(`data_batch_4.bin: record 13 at byte ${13 * 3073} has label 10 (labels are 0–9)`);
      expect(written).to.be.greaterThan(0);
      expect(fs.existsSync(out)).to.equal(false);
      expect(stagingLeftovers(root, 'badlabel')).to.deep.equal([]);
    });

    it('a failure while writing (after some partitions) removes the staging directory', async () => {
      const out = path.join(root, 'midfail');
      const err = await rejection(
        writeCifarDataset(findCifarFiles(src).set!, resolveLocation(out), {
          partitions: 5,
          parquet: false,
          onPartition: (split, i) => {
            if (split === 'test' && i === 1) throw new Error('disk full (simulated)');
          },
        }),
      );
      expect(err.message).to.equal('disk full (simulated)');
      expect(fs.existsSync(out)).to.equal(false);
      expect(stagingLeftovers(root, 'midfail')).to.deep.equal([]);
    });

    it('tfos data cifar10 --src with a short file fails before writing (10,000 records per real file)', async () => {
      const out = path.join(root, 'cli-short');
      const err = await rejection(quiet(() => dataCommand(['cifar10', '--src', src, '--dest', out, '--no-parquet'])));
      expect(err.message).to.match(/^data_batch_1\.bin: holds 20 records \(61460 bytes\); a CIFAR-10 batch file holds 10000 records/);
      expect(fs.existsSync(out)).to.equal(false);
      // --records-per-file 0 accepts files of any whole number of records.
      expect(
        await quiet(() =>
          dataCommand(['cifar10', '--src', src, '--dest', out, '--no-parquet', '--records-per-file', '0', '--partitions', '3']),
        ),
      ).to.equal(0);
      const m: SplitManifest = await readManifest(new LocalFs(), path.join(out, 'train'));
      expect([m.rows, m.partitions.length]).to.deep.equal([100, 3]);
    });
  });

  it('tfos data cifar10 --generate N writes N train / N/5 test rows', async () => {
    const out = path.join(root, 'cli-gen');
    expect(await quiet(() => dataCommand(['cifar10', '--generate', '250', '--dest', out, '--no-parquet', '--partitions', '2']))).to.equal(
      0,
    );
    expect((await readManifest(new LocalFs(), path.join(out, 'train'))).rows).to.equal(250);
    expect((await readManifest(new LocalFs(), path.join(out, 'test'))).rows).to.equal(50);
  });
});
