/**
 * DataFeed: InputMode.TENSORFLOW's Feed (./feed.ts) — this worker's shard of a dataset split,
 * read by the trainer itself with TensorFlowOnSpark's DataFeed semantics:
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
 * The shard's record batches come from lib/io/dataset-read.ts (ranged reads over local disk or
 * WebHDFS, seeded shuffle); batches never cross an epoch boundary (the last batch of an epoch may
 * be short). `new DataFeed(batches)` / `fromRecordBatches` wrap any other source. A bounded number
 * of record batches is read ahead (`prefetch`), so I/O overlaps training and a slow trainer
 * back-pressures the reads. InputMode.SPARK's Feed is SparkFeed (./spark-feed.ts).
 */
import { RecordBatch, Table } from 'apache-arrow';
import { DatasetFs, resolveLocation } from '../io/dataset-fs';
import { EpochEnd, shardEpochs } from '../io/dataset-read';
import { planShard, readManifest, shardRange, SplitManifest, stepsPerEpoch } from '../io/dataset';
import { Feed } from './feed';

export { EpochEnd, stepsPerEpoch, shardRange };

type FeedItem = RecordBatch | EpochEnd;

export interface DataFeedOptions {
  /** Record batches read ahead of the consumer (default 4). */
  prefetch?: number;
  /** Where batchResults() rows go; without a sink they are kept and returned by takeResults(). */
  resultSink?: (rows: unknown[]) => void | Promise<void>;
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

export class DataFeed implements Feed {
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
   * A feed over any source of record batches. `EpochEnd` markers in the source delimit epochs;
   * sources without them are one long epoch.
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
        if (this.queue.isCancelled || !(await this.queue.put(item))) break;
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
    const gen = (signal: AbortSignal) => shardEpochs(loc.fs, loc.path, manifest, units, { ...opts, epochs, shard, window, signal });
    const feed = new DataFeed(gen, { ...opts, epochs: true });
    feed.info = { globalRows: manifest.rows, shard, numShards, shardRows: range[1] - range[0], range, epochs, manifest };
    return feed;
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
  async batchResults(rows: Table | unknown[]): Promise<void> {
    const list = rows instanceof Table ? rows.toArray() : rows;
    if (this.opts.resultSink) await this.opts.resultSink(list);
    else for (const r of list) this.results.push(r);
  }

  /** Results collected by batchResults() (without a resultSink); empties the list. */
  takeResults(): unknown[] {
    return this.results.splice(0);
  }

  /** Stops the feed: no more batches, reads aborted (a source that takes the signal is awaited). */
  async terminate(): Promise<void> {
    if (this.terminated) return;
    this.terminated = true;
    this.current = undefined;
    this.queue.cancel();
    this.abort.abort(new Error('DataFeed terminated'));
    if (this.abortable) await this.producer;
  }

  /** Resolves when the source has been read to its end (or abandoned after terminate). */
  finished(): Promise<void> {
    return this.producer;
  }
}
