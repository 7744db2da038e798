/**
 * The real CIFAR-10 set (`../shared/datasets/cifar10` beside the repository, or TFOS_CIFAR10_DIR):
 * its files, known labels and checksums, and an ingest of two of its files read back by a
 * DataFeed. Slow (tens of MB through xz and SHA-256), so not in the unit suite; the full
 * 60,000-record ingest is a benchmark (`npm run bench ingest`).
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CIFAR, CifarSourceSet, findCifarFiles, readCifarRecords } from '../../lib/io/cifar10';
import { LocalFs, resolveLocation } from '../../lib/io/dataset-fs';
import { readManifest, writeCifarDataset } from '../../lib/io/dataset';
import { DataFeed } from '../../lib/node/data-feed';
import { arrowPython, parquetRowCount, sharedCifarDir, sharedCifarLocation, tempDir } from '../support/cifar-fixture';
import { skipBecause } from '../support/skip';

describe('the real CIFAR-10 set', function () {
  this.timeout(300_000);
  let shared: string;
  let root: string;
  before(function () {
    const dir = sharedCifarDir();
    // The data set, like a GPU, is either on this machine or not; generated sets cover the rest.
    if (!dir) skipBecause(this, `no CIFAR-10 files at ${sharedCifarLocation()} (set TFOS_CIFAR10_DIR)`);
    shared = dir!;
    root = tempDir('tfos-cifar-real-');
  });
  after(() => root && fs.rmSync(root, { recursive: true, force: true }));

  it('announces 50,000 training and 10,000 test records', () => {
    const set = findCifarFiles(shared).set!;
    const count = (xs: { bytes: number }[]) => xs.reduce((a, s) => a + s.bytes / CIFAR.recordBytes, 0);
    expect(count(set.train)).to.equal(50_000);
    expect(count(set.test)).to.equal(10_000);
    expect(set.classes).to.deep.equal([...CIFAR.classes]);
  });

  it('streams data_batch_1 with the known first labels 6 9 9 4 1 1 2 7 8 3 (stopping early)', async () => {
    const src = findCifarFiles(shared).set!.train[0];
    const abort = new AbortController();
    const labels: number[] = [];
    for await (const chunk of readCifarRecords(src, { expectedRecords: 10_000, signal: abort.signal })) {
      for (let i = 0; i < chunk.count && labels.length < 10; i++) labels.push(chunk.bytes[i * CIFAR.recordBytes]);
      if (labels.length < 10) continue;
      abort.abort(); // kills xz: no need to decompress the rest
      break;
    }
    expect(labels.join(' ')).to.equal('6 9 9 4 1 1 2 7 8 3');
  });

  it('reads and verifies test_batch in full (10,000 records, 1,000 per class, SHA256SUMS)', async () => {
    const src = findCifarFiles(shared).set!.test[0];
    expect(src.expectedSha256).to.match(/^[0-9a-f]{64}$/);
    let n = 0;
    const perClass = new Array<number>(10).fill(0);
    for await (const chunk of readCifarRecords(src, { expectedRecords: 10_000 })) {
      for (let i = 0; i < chunk.count; i++) perClass[chunk.bytes[i * CIFAR.recordBytes]]++;
      n += chunk.count;
    }
    expect(n).to.equal(10_000);
    expect(perClass).to.deep.equal(new Array(10).fill(1000));
  });

  it('ingests data_batch_1 + test_batch (Arrow + Parquet): 10,000 rows each, read back in order', async () => {
    const python = arrowPython();
    if (!python) throw new Error("no Python with pyarrow (the Parquet writer): run 'node bin/tfos.js setup'");
    const found = findCifarFiles(shared).set!;
    const subset: CifarSourceSet = { ...found, train: [found.train[0]], test: found.test };
    const out = path.join(root, 'real');
    const res = await writeCifarDataset(subset, resolveLocation(out), { parquet: { python }, expectedRecordsPerFile: 10_000 });
    expect(res.splits.train.rows).to.equal(10_000);
    expect(res.splits.test.rows).to.equal(10_000);
    const feed = await DataFeed.fromDataset(path.join(out, 'train'));
    const t = (await feed.nextBatch(10))!;
    expect(Array.from(t.getChild('label')!.toArray() as Int32Array).join(' ')).to.equal('6 9 9 4 1 1 2 7 8 3');
    expect(Array.from(t.getChild('id')!.toArray() as BigInt64Array, Number)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await feed.terminate();
    const test = await readManifest(new LocalFs(), path.join(out, 'test'));
    expect(test.partitions.reduce((a, p) => a.map((x, i) => x + p.labelCounts[i]), new Array(10).fill(0))).to.deep.equal(
      new Array(10).fill(1000),
    );
    expect(parquetRowCount(python, path.join(out, 'train')).rows).to.equal(10_000);
  });
});
