/**
 * Feed: what TFNode.dataFeed(ctx) returns in both input modes, so one training function serves
 * both — TensorFlowOnSpark's DataFeed calls. InputMode.TENSORFLOW: DataFeed (./data-feed.ts),
 * this worker's shard read by the trainer; InputMode.SPARK: SparkFeed (./spark-feed.ts), the rows
 * Spark streams in.
 */
import type { Table } from 'apache-arrow';

export interface Feed {
  /** Up to `n` rows as an Arrow Table (fewer only at an end), or null once the feed is exhausted or terminated. */
  nextBatch(n: number): Promise<Table | null>;
  /** True once the feed is exhausted or terminated. */
  shouldStop(): boolean;
  /**
   * Inference results for the rows handed out so far, in order, one per input row (InputMode.SPARK
   * sends them back to Spark; a dataset feed keeps them, see DataFeed.takeResults).
   */
  batchResults(rows: Table | Array<Record<string, unknown>>): Promise<void>;
  /** Stops reading now: the rest of the data is skipped and the source released. */
  terminate(): Promise<void>;
}
