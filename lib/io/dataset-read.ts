/**
 * Reading one shard of a dataset split for training: its record batches epoch after epoch, with
 * an optional seeded shuffle (record-batch order, then rows within a window of batches). The
 * trainer's DataFeed (lib/node/data-feed.ts) consumes this; the I/O itself is ./dataset.ts.
 */
import { Data, DataType, makeData, RecordBatch, Schema, Struct, Type } from 'apache-arrow';
import { DatasetFs } from './dataset-fs';
import { readUnits, ReadUnit, SplitManifest } from './dataset';
import { mulberry32, permutation } from './random';

/** Marks the end of an epoch in a shard's stream of record batches. */
export class EpochEnd {
  constructor(readonly epoch: number) {}
}

/** A shard's record batches, epoch after epoch (shuffled when asked), each epoch closed by an EpochEnd. */
export async function* shardEpochs(
  fs: DatasetFs,
  splitPath: string,
  manifest: SplitManifest,
  units: ReadUnit[],
  o: { epochs: number; shard: number; shuffle?: boolean; seed?: number; window: number; maxRangeBytes?: number; signal: AbortSignal },
): AsyncGenerator<RecordBatch | EpochEnd> {
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    if (!o.shuffle) {
      for await (const { batch } of readUnits(fs, splitPath, manifest, units, { maxRangeBytes: o.maxRangeBytes, signal: o.signal })) yield batch;
    } else {
      const rnd = mulberry32(((o.seed ?? 0) * 0x9e3779b1) ^ Math.imul(o.shard + 1, 0x85ebca6b) ^ Math.imul(epoch + 1, 0xc2b2ae35));
      const order = permutation(units.length, rnd).map((i) => units[i]);
      let window: RecordBatch[] = [];
      let outRows = 0;
      for await (const { batch } of readUnits(fs, splitPath, manifest, order, { maxRangeBytes: o.maxRangeBytes, signal: o.signal })) {
        window.push(batch);
        outRows = Math.max(outRows, batch.numRows);
        if (window.length >= o.window) {
          yield* shuffleRows(window, rnd, outRows);
          window = [];
        }
      }
      if (window.length) yield* shuffleRows(window, rnd, outRows);
    }
    yield new EpochEnd(epoch);
  }
}

/** The rows of `window` in random order, as record batches of up to `rowsPer` rows (copies). */
function* shuffleRows(window: RecordBatch[], rnd: () => number, rowsPer: number): Generator<RecordBatch> {
  const picks: [number, number][] = [];
  window.forEach((b, bi) => {
    for (let r = 0; r < b.numRows; r++) picks.push([bi, r]);
  });
  const perm = permutation(picks.length, rnd);
  for (let s = 0; s < perm.length; s += rowsPer) {
    yield takeRows(window, perm.slice(s, s + rowsPer).map((i) => picks[i]));
  }
}

/**
 * Gathers rows (batch index, row) of record batches sharing a schema into a new batch. Supports
 * non-null fixed-width numeric columns and Binary/Utf8 columns (the dataset's schema).
 */
export function takeRows(batches: RecordBatch[], picks: [number, number][]): RecordBatch {
  const schema: Schema = batches[0].schema;
  const n = picks.length;
  const children = schema.fields.map((field, ci) => {
    const cols = batches.map((b) => {
      const data = b.data.children[ci] as Data;
      if (data.nullCount > 0) throw new Error(`takeRows: column '${field.name}' has nulls (not supported)`);
      return data;
    });
    const type = field.type as DataType;
    if (type.typeId === Type.Binary || type.typeId === Type.Utf8) {
      let total = 0;
      for (const [bi, r] of picks) total += cols[bi].valueOffsets[r + 1] - cols[bi].valueOffsets[r];
      const values = new Uint8Array(total);
      const offsets = new Int32Array(n + 1);
      let at = 0;
      picks.forEach(([bi, r], i) => {
        const d = cols[bi];
        const s = d.valueOffsets[r];
        const e = d.valueOffsets[r + 1];
        values.set((d.values as Uint8Array).subarray(s, e), at);
        at += e - s;
        offsets[i + 1] = at;
      });
      return makeData({ type, length: n, nullCount: 0, valueOffsets: offsets, data: values } as never);
    }
    if (DataType.isInt(type) || DataType.isFloat(type)) {
      const stride = cols[0].stride;
      const Ctor = (cols[0].values as unknown as { constructor: new (n: number) => { [i: number]: number | bigint } }).constructor;
      const out = new Ctor(n * stride);
      picks.forEach(([bi, r], i) => {
        const v = cols[bi].values as unknown as { [i: number]: number | bigint };
        for (let k = 0; k < stride; k++) out[i * stride + k] = v[r * stride + k];
      });
      return makeData({ type, length: n, nullCount: 0, data: out } as never);
    }
    throw new Error(`takeRows: column '${field.name}' of type ${type} is not supported`);
  });
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children }));
}
