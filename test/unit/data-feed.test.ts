import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RecordBatch, Table } from 'apache-arrow';
import { CIFAR, generatedCifarSet } from '../../lib/io/cifar10';
import { resolveLocation } from '../../lib/io/dataset-fs';
import { datasetSchema, makeImageBatch, writeCifarDataset } from '../../lib/io/dataset';
import { imagesToFloat32, labelsToInt32, labelsToOneHot, tableToTensors } from '../../lib/io/arrow-tensors';
import { loadTfjs } from '../../lib/platform/tfjs';
import { DataFeed } from '../../lib/node/data-feed';
import { generatedRecord, tempDir } from '../support/cifar-fixture';

/** A batch of `n` images with ids from `first`; pixel p of channel c of row r = (r*31 + c*101 + p*7) & 255. */
function knownBatch(first: number, n: number): RecordBatch {
  const ids = new BigInt64Array(n);
  const labels = new Int32Array(n);
  const images = new Uint8Array(n * 3072);
  for (let r = 0; r < n; r++) {
    ids[r] = BigInt(first + r);
    labels[r] = (first + r) % 10;
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) images[r * 3072 + c * 1024 + p] = ((first + r) * 31 + c * 101 + p * 7) & 255;
  }
  return makeImageBatch(datasetSchema(), ids, labels, images, 3072);
}

const idsOf = (t: Table) => Array.from(t.getChild('id')!.toArray() as BigInt64Array, Number);

describe('DataFeed', () => {
  describe('over a source of record batches', () => {
    it('cuts batches of n rows across record batches', async () => {
      const feed = DataFeed.fromRecordBatches([knownBatch(0, 30), knownBatch(30, 25), knownBatch(55, 45)]);
      const sizes: number[] = [];
      const ids: number[] = [];
      let t: Table | null;
      while ((t = await feed.nextBatch(40))) {
        sizes.push(t.numRows);
        ids.push(...idsOf(t));
      }
      expect(sizes).to.deep.equal([40, 40, 20]);
      expect(ids).to.deep.equal(Array.from({ length: 100 }, (_, i) => i));
      expect(feed.shouldStop()).to.equal(true);
      expect(await feed.nextBatch(5)).to.equal(null);
    });

    it('sends batchResults to the sink, or keeps them for takeResults', async () => {
      const got: unknown[][] = [];
      const withSink = DataFeed.fromRecordBatches([knownBatch(0, 10)], { resultSink: (rows) => void got.push(rows) });
      const t = (await withSink.nextBatch(10))!;
      await withSink.batchResults(idsOf(t).map((id) => ({ id, prediction: id % 10 })));
      expect(got).to.have.length(1);
      expect(got[0][3]).to.deep.equal({ id: 3, prediction: 3 });
      const kept = DataFeed.fromRecordBatches([knownBatch(0, 4)]);
      await kept.nextBatch(4);
      await kept.batchResults([1, 2]);
      await kept.batchResults([3, 4]);
      expect(kept.takeResults()).to.deep.equal([1, 2, 3, 4]);
      expect(kept.takeResults()).to.deep.equal([]);
    });

    it('reads ahead at most `prefetch` record batches (backpressure)', async () => {
      let pulled = 0;
      let reached: (() => void) | undefined;
      const pulledTo = (n: number) =>
        new Promise<void>((r) => {
          reached = () => pulled >= n && r();
          reached();
        });
      async function* source() {
        for (let i = 0; i < 50; i++) {
          pulled++;
          reached?.();
          yield knownBatch(i * 10, 10);
        }
      }
      // Settles every pending promise chain: the reader runs ahead as far as it ever will.
      const quiesce = async () => {
        for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      };
      const filled = pulledTo(3);
      const feed = new DataFeed(source(), { prefetch: 3 });
      await filled;
      await quiesce();
      expect(pulled).to.be.within(3, 4); // 3 queued + at most 1 waiting to be queued
      const more = pulledTo(4);
      await feed.nextBatch(10);
      await more;
      await quiesce();
      expect(pulled).to.be.within(4, 5);
      await feed.terminate();
    });

    it('terminate(): no more batches, and the source stops being pulled', async () => {
      let pulled = 0;
      async function* source() {
        for (let i = 0; i < 40; i++) {
          pulled++;
          yield knownBatch(i * 10, 10);
        }
      }
      const stopped = new DataFeed(source(), { prefetch: 2 });
      await stopped.nextBatch(15);
      await stopped.terminate();
      expect(stopped.shouldStop()).to.equal(true);
      expect(await stopped.nextBatch(10)).to.equal(null);
      await stopped.finished();
      expect(pulled).to.be.below(10);
    });

    it('propagates a source error to nextBatch', async () => {
      async function* source() {
        yield knownBatch(0, 10);
        throw new Error('socket reset (simulated)');
      }
      const feed = new DataFeed(source());
      expect((await feed.nextBatch(10))?.numRows).to.equal(10);
      let err: Error | undefined;
      await feed.nextBatch(10).catch((e: Error) => (err = e));
      expect(err?.message).to.equal('socket reset (simulated)');
    });
  });

  describe('Arrow → tensors', () => {
    it('turns CHW image bytes into NHWC float32 in [0, 1], across chunks and slices', () => {
      const table = new Table([knownBatch(0, 5), knownBatch(5, 6).slice(1, 4)]); // ids 0..4, 6..8
      const ids = idsOf(table);
      expect(ids).to.deep.equal([0, 1, 2, 3, 4, 6, 7, 8]);
      const x = imagesToFloat32(table);
      expect(x.length).to.equal(8 * 32 * 32 * 3);
      for (let r = 0; r < 8; r++) {
        for (const [y, xx] of [
          [0, 0],
          [0, 31],
          [17, 5],
          [31, 31],
        ]) {
          for (let c = 0; c < 3; c++) {
            const p = y * 32 + xx;
            const want = ((ids[r] * 31 + c * 101 + p * 7) & 255) / 255;
            expect(x[r * 3072 + (y * 32 + xx) * 3 + c]).to.be.closeTo(want, 1e-7);
          }
        }
      }
    });

    it('gives int32 labels (zero-copy for one chunk) and one-hot rows', () => {
      const batch = knownBatch(0, 12);
      const single = new Table([batch]);
      const labels = labelsToInt32(single);
      expect(Array.from(labels)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
      expect(labels.buffer).to.equal((batch.getChild('label')!.data[0].values as Int32Array).buffer);
      const hot = labelsToOneHot(single, 10);
      expect(Array.from(hot.subarray(30, 40))).to.deep.equal([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    });

    it('builds tfjs tensors whose pixels match a known CIFAR record', async () => {
      const root = tempDir('tfos-feed-');
      try {
        const dest = path.join(root, 'ds');
        await writeCifarDataset(generatedCifarSet(60, { seed: 8, testRecords: 10 }), resolveLocation(dest), {
          parquet: false,
          partitions: 2,
          batchRows: 16,
        });
        const feed = await DataFeed.fromDataset(path.join(dest, 'train'), { shard: 1, numShards: 2 });
        const t = (await feed.nextBatch(8))!;
        const { tf } = loadTfjs();
        const { xs, ys } = tableToTensors(t);
        expect(xs.shape).to.deep.equal([8, 32, 32, 3]);
        expect(ys.shape).to.deep.equal([8, 10]);
        const id = Number(t.getChild('id')!.get(2));
        expect(id).to.equal(32);
        const rec = generatedRecord(8, id);
        const px = (await xs.slice([2, 0, 0, 0], [1, 32, 32, 3]).data()) as Float32Array;
        for (let y = 0; y < 32; y++) {
          for (let x = 0; x < 32; x++) {
            for (let c = 0; c < 3; c++) {
              const want = rec[1 + c * 1024 + y * 32 + x] / 255;
              if (Math.abs(px[(y * 32 + x) * 3 + c] - want) > 1e-6)
                throw new Error(`pixel (${y},${x},${c}): ${px[(y * 32 + x) * 3 + c]} != ${want}`);
            }
          }
        }
        expect((await ys.argMax(1).data())[2]).to.equal(rec[0]);
        tf.dispose([xs, ys]);
        await feed.terminate();
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
  });

  describe('over a dataset (TENSORFLOW mode)', () => {
    let root: string;
    let dest: string;
    before(async () => {
      root = tempDir('tfos-feed-');
      dest = path.join(root, 'ds');
      await writeCifarDataset(generatedCifarSet(6000, { seed: 2, testRecords: 10 }), resolveLocation(dest), {
        parquet: false,
        partitions: 4,
      });
    });
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    it('terminate() mid-epoch stops the reads', async () => {
      const feed = await DataFeed.fromDataset(path.join(dest, 'train'), { epochs: 5, prefetch: 2 });
      await feed.nextBatch(100);
      await feed.terminate();
      await feed.finished();
      expect(feed.stats.recordBatchesRead).to.be.below(10);
      expect(await feed.nextBatch(10)).to.equal(null);
      expect(feed.shouldStop()).to.equal(true);
    });

    it('names the file when a partition is missing', async () => {
      const copy = path.join(root, 'broken');
      fs.cpSync(dest, copy, { recursive: true });
      fs.rmSync(path.join(copy, 'train', '_arrow', 'part-00002.arrow'));
      const feed = await DataFeed.fromDataset(path.join(copy, 'train'));
      let err: Error | undefined;
      try {
        while (await feed.nextBatch(500));
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).to.include('part-00002.arrow');
    });

    it('measures records/s from local Arrow partitions to tensors', async function () {
      const { tf, package: backend } = loadTfjs();
      for (const shuffle of [false, true]) {
        const feed = await DataFeed.fromDataset(path.join(dest, 'train'), { shuffle, epochs: 2 });
        const started = process.hrtime.bigint();
        let rows = 0;
        let t: Table | null;
        while ((t = await feed.nextBatch(128))) {
          const { xs, ys } = tableToTensors(t);
          rows += xs.shape[0];
          tf.dispose([xs, ys]);
        }
        const s = Number(process.hrtime.bigint() - started) / 1e9;
        expect(rows).to.equal(12_000);
        console.log(
          `      ${shuffle ? 'shuffled' : 'in order'}: ${rows} records → tensors (${backend}) in ${s.toFixed(2)} s = ${Math.round(rows / s)} records/s`,
        );
      }
      expect(CIFAR.imageBytes).to.equal(3072);
    });
  });
});
