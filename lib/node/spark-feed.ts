/**
 * InputMode.SPARK's Feed (./feed.ts): the record batches Spark streams into this trainer (see
 * feed-server.ts), across all epochs of one feed.
 */
import { RecordBatch, Table, tableFromJSON } from 'apache-arrow';
import { Feed } from './feed';
import { FeedConnection, FeedServer } from './feed-server';

export interface FeedAnnouncement {
  feedId: string;
  kind: 'train' | 'infer';
  epochs: number;
}

export class SparkFeed implements Feed {
  private conn?: FeedConnection;
  private batchIt?: AsyncGenerator<RecordBatch>;
  private epoch = 0;
  private buffered: RecordBatch[] = [];
  private bufferedRows = 0;
  private rowsThisConn = 0;
  private resultsThisConn = 0;
  private inputEnded = false;
  private ended = false;
  private stopped = false;
  private sawBatch = false;

  constructor(
    private readonly server: FeedServer,
    readonly feed: FeedAnnouncement,
    /** Told when the first feeding task connects and when its first batch arrives (the driver times them). */
    private readonly onPhase?: (phase: 'feed-connected' | 'first-batch') => void,
  ) {}

  /** Up to `n` rows (fewer only at the very end), or null when every epoch has been read. */
  async nextBatch(n: number): Promise<Table | null> {
    if (!(n > 0)) throw new Error(`nextBatch(n) needs n > 0, got ${n}`);
    while (this.bufferedRows < n && !this.ended) {
      const batch = await this.pull();
      if (batch && batch.numRows > 0) {
        this.buffered.push(batch);
        this.bufferedRows += batch.numRows;
      }
    }
    if (this.bufferedRows === 0) return null;
    const take: RecordBatch[] = [];
    let need = n;
    while (need > 0 && this.buffered.length) {
      const b = this.buffered[0];
      if (b.numRows <= need) {
        take.push(b);
        this.buffered.shift();
        need -= b.numRows;
      } else {
        take.push(b.slice(0, need));
        this.buffered[0] = b.slice(need);
        need = 0;
      }
    }
    const rows = n - need;
    this.bufferedRows -= rows;
    return new Table(take);
  }

  /** True once the feed is exhausted or terminated. */
  shouldStop(): boolean {
    return this.stopped || (this.ended && this.bufferedRows === 0);
  }

  /**
   * Inference results for the rows handed out so far, in the same order: one result row per input
   * row. The key column is added on the Spark side, so results need only the output columns.
   */
  async batchResults(rows: Table | Array<Record<string, unknown>>): Promise<void> {
    if (this.feed.kind !== 'infer') throw new Error('batchResults() is for inference feeds (cluster.inference)');
    if (!this.conn) throw new Error('batchResults() called before any input was read');
    const table = rows instanceof Table ? rows : tableFromJSON(rows);
    this.resultsThisConn += table.numRows;
    if (this.resultsThisConn > this.rowsThisConn) {
      throw new Error(`batchResults(): ${this.resultsThisConn} results for only ${this.rowsThisConn} input rows read so far`);
    }
    if (table.numRows) await this.conn.sendResults(table);
    this.maybeEndResults();
  }

  /** Stops reading: Spark's feeding tasks end cleanly, the rest of the data is skipped. */
  async terminate(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ended = true;
    await this.batchIt?.return(undefined);
    if (this.conn) this.conn.ack(this.rowsThisConn, true);
    this.conn = undefined;
  }

  private maybeEndResults(): void {
    if (this.feed.kind === 'infer' && this.inputEnded && this.conn && this.resultsThisConn === this.rowsThisConn) {
      this.conn.endResults();
      this.conn = undefined;
    }
  }

  /** Next batch across connections (epochs); undefined when a connection ends. */
  private async pull(): Promise<RecordBatch | undefined> {
    if (!this.batchIt) {
      if (this.epoch >= this.feed.epochs) {
        this.ended = true;
        return undefined;
      }
      this.conn = await this.server.next(this.feed.feedId, this.epoch);
      if (this.epoch === 0) this.onPhase?.('feed-connected');
      this.batchIt = this.conn.batches();
      this.rowsThisConn = 0;
      this.resultsThisConn = 0;
      this.inputEnded = false;
    }
    const r = await this.batchIt.next();
    if (!r.done) {
      if (!this.sawBatch) this.onPhase?.('first-batch');
      this.sawBatch = true;
      this.rowsThisConn += r.value.numRows;
      return r.value;
    }
    // This epoch's share is fully read.
    this.batchIt = undefined;
    this.epoch++;
    if (this.feed.kind === 'train') {
      this.conn?.ack(this.rowsThisConn, false);
      this.conn = undefined;
    } else {
      this.inputEnded = true;
      this.maybeEndResults();
    }
    if (this.epoch >= this.feed.epochs) this.ended = true;
    return undefined;
  }
}
