/**
 * DataFeed: how a trainer gets its data, with TensorFlowOnSpark's DataFeed semantics.
 *
 *   const feed = await DataFeed.fromDataset('hdfs://nn:8020/data/cifar10/train',
 *                                           { shard: ctx.workerNum, numShards, epochs: 2, shuffle: true });
 *   const steps = stepsPerEpoch(feed.info.globalRows, numShards, 64);
 *   while (!feed.shouldStop()) {
 *     const table = await feed.nextBatch(64);      // apache-arrow Table, ≤ 64 rows; null at the end
 *     if (!table) break;
 *     const { xs, ys } = tableToTensors(table);     // lib/io/arrow-tensors
 *     ...
 *   }
 *   await feed.terminate();
 *
 * Sources:
 *   - TENSORFLOW mode: `DataFeed.fromDataset(splitPath, {shard, numShards, epochs, shuffle})` reads
 *     this shard's rows of a tfos dataset split (lib/io/dataset.ts) with ranged reads over local
 *     disk or WebHDFS. Batches never cross an epoch boundary (the last batch of an epoch may be short).
 *   - SPARK mode: `DataFeed.fromArrowStream(readable)` takes Arrow IPC stream bytes (several
 *     streams back to back are fine: e.g. one per Spark partition fed), or `new DataFeed(batches)`
 *     any AsyncIterable<RecordBatch>. Epochs are whatever the feeder sends.
 * Both read ahead a bounded number of record batches (`prefetch`), so I/O overlaps training and
 * a slow trainer back-pressures the source.
 */
import { Readable } from 'node:stream';
import { Data, DataType, makeData, RecordBatch, RecordBatchReader, Schema, Struct, Table, Type } from 'apache-arrow';
import { mulberry32 } from '../io/cifar10';
import { DatasetFs, resolveLocation } from '../io/dataset-fs';
import { planShard, readManifest, readUnits, ReadUnit, shardRange, SplitManifest, stepsPerEpoch } from '../io/dataset';

export { stepsPerEpoch, shardRange };

/** Marks the end of an epoch in a feed's item stream. */
export class EpochEnd {
  constructor(readonly epoch: number) {}
}

type FeedItem = RecordBatch | EpochEnd;

export interface DataFeedOptions {
  /** Record batches read ahead of the consumer (default 4). */
  prefetch?: number;
  /**
   * Where batchResults() rows go (SPARK-mode inference: back to the executor). Without a sink they
   * are kept and returned by takeResults().
   */
  resultSink?: (rows: unknown[]) => void | Promise<void>;
  /** Called once by terminate(), e.g. to tell the feeding side to stop sending. */
  onTerminate?: () => void | Promise<void>;
  /**
   * After terminate(), keep reading and discarding the source until it ends (TFoS semantics for
   * SPARK mode: feeders are not left blocked). Default false: stop reading at once.
   */
  drainOnTerminate?: boolean;
}

export interface DatasetFeedOptions extends DataFeedOptions {
  /** This reader's shard (TFoS: ctx.workerNum / executor index), default 0. */
  shard?: number;
  /** Number of shards (readers), default 1. */
  numShards?: number;
  /** Passes over the shard, default 1. */
  epochs?: number;
  /** Shuffle each epoch: record-batch order and rows within a window of batches (seeded). */
  shuffle?: boolean;
  /** Seed of the shuffle (default 0); epoch e uses a stream derived from (seed, shard, e). */
  seed?: number;
  /** Record batches mixed together when shuffling (default 8; a batch is 500 rows as written by tfos data). */
  shuffleWindow?: number;
  /** WebHDFS endpoint for hdfs:// paths (default TFOS_WEBHDFS). */
  webhdfs?: string;
  /** File system to read from (overrides path resolution). */
  fs?: DatasetFs;
  /** Largest single ranged read (default 8 MiB). */
  maxRangeBytes?: number;
}

/** What a dataset feed reads. */
export interface FeedInfo {
  globalRows: number;
  shard: number;
  numShards: number;
  /** Rows of this shard, delivered once per epoch. */
  shardRows: number;
  /** Global rows [start, end) of this shard. */
  range: [number, number];
  epochs: number;
  manifest: SplitManifest;
}

export interface FeedStats {
  rows: number;
  batches: number;
  recordBatchesRead: number;
}

class BoundedQueue<T> {
  private items: T[] = [];
  private done = false;
  private error: unknown;
  private cancelled = false;
  private wakeTake?: () => void;
  private wakePut?: () => void;
  constructor(
    private readonly capacity: number,
    private readonly weight: (x: T) => number,
  ) {}
  private load = 0;

  /** False when the queue was cancelled (the producer should stop). */
  async put(x: T): Promise<boolean> {
    while (this.load >= this.capacity && !this.cancelled) await new Promise<void>((r) => (this.wakePut = r));
    if (this.cancelled) return false;
    this.items.push(x);
    this.load += this.weight(x);
    this.wakeTake?.();
    return true;
  }

  async take(): Promise<T | undefined> {
    while (this.items.length === 0) {
      if (this.error !== undefined) throw this.error;
      if (this.done || this.cancelled) return undefined;
      await new Promise<void>((r) => (this.wakeTake = r));
    }
    const x = this.items.shift() as T;
    this.load -= this.weight(x);
    this.wakePut?.();
    return x;
  }

  end(error?: unknown): void {
    this.done = true;
    if (error !== undefined) this.error = error;
    this.wakeTake?.();
  }

  cancel(): void {
    this.cancelled = true;
    this.items = [];
    this.load = 0;
    this.wakePut?.();
    this.wakeTake?.();
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }
}

export class DataFeed {
  /** Set by fromDataset: what this feed reads. */
  info?: FeedInfo;
  readonly stats: FeedStats = { rows: 0, batches: 0, recordBatchesRead: 0 };
  private readonly queue: BoundedQueue<FeedItem>;
  private current?: { batch: RecordBatch; offset: number };
  private ended = false;
  private terminated = false;
  private readonly results: unknown[] = [];
  private epochNo = 0;
  /** Epoch of the next rows in the queue (EpochEnd markers consumed so far). */
  private readEpoch = 0;
  /** Whether the source takes the abort signal (then terminate() waits for it to stop). */
  private readonly abortable: boolean;
  private readonly abort = new AbortController();
  private readonly producer: Promise<void>;
  private readonly hasEpochs: boolean;

  /**
   * A feed over any source of record batches (SPARK mode wires its socket here). `EpochEnd`
   * markers in the source delimit epochs; sources without them are one long epoch.
   */
  constructor(
    source: AsyncIterable<FeedItem> | Iterable<FeedItem> | ((signal: AbortSignal) => AsyncIterable<FeedItem>),
    private readonly opts: DataFeedOptions & { epochs?: boolean } = {},
  ) {
    const prefetch = opts.prefetch ?? 4;
    if (!Number.isInteger(prefetch) || prefetch < 1) throw new Error(`prefetch must be a positive integer, got ${prefetch}`);
    this.hasEpochs = opts.epochs ?? false;
    this.queue = new BoundedQueue<FeedItem>(prefetch, (x) => (x instanceof EpochEnd ? 0 : 1));
    this.abortable = typeof source === 'function';
    const iterable = typeof source === 'function' ? source(this.abort.signal) : source;
    this.producer = this.produce(iterable);
  }

  private async produce(source: AsyncIterable<FeedItem> | Iterable<FeedItem>): Promise<void> {
    try {
      for await (const item of source as AsyncIterable<FeedItem>) {
        if (!(item instanceof EpochEnd)) this.stats.recordBatchesRead++;
        if (this.queue.isCancelled) {
          if (this.opts.drainOnTerminate) continue; // discard the rest, keep the sender unblocked
          break;
        }
        if (!(await this.queue.put(item)) && !this.opts.drainOnTerminate) break;
      }
      this.queue.end();
    } catch (err) {
      this.queue.end(this.terminated ? undefined : err);
    }
  }

  /** TENSORFLOW mode: this shard of a dataset split written by `tfos data` (local path or hdfs://). */
  static async fromDataset(splitPath: string, opts: DatasetFeedOptions = {}): Promise<DataFeed> {
    const loc = opts.fs ? { fs: opts.fs, path: splitPath } : resolveLocation(splitPath, { webhdfs: opts.webhdfs });
    const manifest = await readManifest(loc.fs, loc.path);
    const shard = opts.shard ?? 0;
    const numShards = opts.numShards ?? 1;
    const epochs = opts.epochs ?? 1;
    if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`epochs must be a positive integer, got ${epochs}`);
    const range = shardRange(manifest.rows, shard, numShards);
    const units = planShard(manifest, shard, numShards);
    const window = opts.shuffleWindow ?? 8;
    const gen = (signal: AbortSignal) => datasetItems(loc.fs, loc.path, manifest, units, { ...opts, epochs, shard, window, signal });
    const feed = new DataFeed(gen, { ...opts, epochs: true });
    feed.info = { globalRows: manifest.rows, shard, numShards, shardRows: range[1] - range[0], range, epochs, manifest };
    return feed;
  }

  /** SPARK mode: Arrow IPC stream bytes (one or more streams back to back) from a socket or pipe. */
  static fromArrowStream(stream: NodeJS.ReadableStream | AsyncIterable<Uint8Array>, opts: DataFeedOptions = {}): DataFeed {
    const drain = opts.drainOnTerminate ?? true;
    // apache-arrow's own Node-stream adapter loses its place between back-to-back streams when
    // chunks are small; a plain async iterable of the chunks does not.
    async function* bytes(): AsyncGenerator<Uint8Array> {
      for await (const chunk of stream as AsyncIterable<Uint8Array>) yield chunk;
    }
    async function* batches(): AsyncGenerator<RecordBatch> {
      for await (const reader of RecordBatchReader.readAll(bytes())) {
        for await (const batch of reader) yield batch;
      }
    }
    const onTerminate = async () => {
      // Not draining: release the sender at once by closing our end.
      if (!drain) (stream as Partial<Readable>).destroy?.();
      await opts.onTerminate?.();
    };
    return new DataFeed(batches(), { ...opts, drainOnTerminate: drain, onTerminate });
  }

  /** Any (async) iterable of record batches. */
  static fromRecordBatches(batches: AsyncIterable<RecordBatch> | Iterable<RecordBatch>, opts: DataFeedOptions = {}): DataFeed {
    return new DataFeed(batches, opts);
  }

  /** Epoch (0-based) of the rows the last nextBatch() returned. */
  get epoch(): number {
    return this.epochNo;
  }

  /**
   * Up to `n` rows as an Arrow Table (zero-copy slices of the record batches read), or null when
   * the feed has ended or was terminated. A dataset feed never mixes two epochs in one batch.
   */
  async nextBatch(n: number): Promise<Table | null> {
    if (!Number.isInteger(n) || n < 1) throw new Error(`nextBatch: n must be a positive integer, got ${n}`);
    if (this.terminated || this.ended) return null;
    const parts: RecordBatch[] = [];
    let rows = 0;
    let batchEpoch = this.readEpoch;
    while (rows < n) {
      if (!this.current) {
        const item = await this.queue.take();
        if (this.terminated) return null;
        if (item === undefined) {
          this.ended = true;
          break;
        }
        if (item instanceof EpochEnd) {
          this.readEpoch = item.epoch + 1;
          if (rows > 0) break;
          continue;
        }
        if (item.numRows === 0) continue;
        this.current = { batch: item, offset: 0 };
      }
      if (rows === 0) batchEpoch = this.readEpoch;
      const { batch, offset } = this.current;
      const take = Math.min(n - rows, batch.numRows - offset);
      parts.push(offset === 0 && take === batch.numRows ? batch : batch.slice(offset, offset + take));
      rows += take;
      if (offset + take === batch.numRows) this.current = undefined;
      else this.current.offset = offset + take;
    }
    if (rows === 0) return null;
    this.epochNo = batchEpoch;
    this.stats.rows += rows;
    this.stats.batches++;
    return new Table(parts);
  }

  /**
   * Discards the rest of the current epoch (dataset feeds): a synchronous trainer that ran
   * stepsPerEpoch() full batches calls this so every worker starts the next epoch together.
   * Returns the number of rows skipped.
   */
  async endEpoch(): Promise<number> {
    if (!this.hasEpochs) throw new Error('endEpoch: this feed has no epochs (stream feeds end when the sender stops)');
    let skipped = 0;
    if (this.current) {
      skipped += this.current.batch.numRows - this.current.offset;
      this.current = undefined;
    }
    if (this.readEpoch > this.epochNo || this.terminated) return skipped; // already at the boundary
    for (;;) {
      const item = await this.queue.take();
      if (item === undefined) {
        this.ended = true;
        return skipped;
      }
      if (item instanceof EpochEnd) {
        this.readEpoch = item.epoch + 1;
        return skipped;
      }
      skipped += item.numRows;
    }
  }

  /** Async iteration over batches of `n` rows until the feed ends. */
  async *batches(n: number): AsyncGenerator<Table> {
    for (;;) {
      const t = await this.nextBatch(n);
      if (!t) return;
      yield t;
    }
  }

  /** True once the feed ended (nextBatch returned null) or terminate() was called. */
  shouldStop(): boolean {
    return this.terminated || this.ended;
  }

  /** Inference output for the rows of the last batch(es): sent to resultSink, else kept. */
  async batchResults(rows: unknown[] | Table): Promise<void> {
    const list = rows instanceof Table ? rows.toArray() : rows;
    if (this.opts.resultSink) await this.opts.resultSink(list);
    else for (const r of list) this.results.push(r);
  }

  /** Results collected by batchResults() (without a resultSink); empties the list. */
  takeResults(): unknown[] {
    return this.results.splice(0);
  }

  /** Stops the feed: no more batches, reads aborted (or drained, see drainOnTerminate). */
  async terminate(): Promise<void> {
    if (this.terminated) return;
    this.terminated = true;
    this.current = undefined;
    this.queue.cancel();
    if (!this.opts.drainOnTerminate) this.abort.abort(new Error('DataFeed terminated'));
    try {
      await this.opts.onTerminate?.();
    } finally {
      if (!this.opts.drainOnTerminate && this.abortable) await this.producer;
    }
  }

  /** Resolves when the source has been read to its end (or abandoned after terminate). */
  finished(): Promise<void> {
    return this.producer;
  }
}

/** Items of a dataset feed: the shard's record batches per epoch, shuffled when asked, then EpochEnd. */
async function* datasetItems(
  fs: DatasetFs,
  splitPath: string,
  manifest: SplitManifest,
  units: ReadUnit[],
  o: { epochs: number; shard: number; shuffle?: boolean; seed?: number; window: number; maxRangeBytes?: number; signal: AbortSignal },
): AsyncGenerator<FeedItem> {
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

function permutation(n: number, rnd: () => number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rnd() % (i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
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

/** Adapts a Node Readable of bytes for fromArrowStream (re-exported for callers with sockets). */
export function asByteStream(readable: Readable): AsyncIterable<Uint8Array> {
  return readable as AsyncIterable<Uint8Array>;
}
