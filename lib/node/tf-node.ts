/**
 * Node-side API used inside the user's training function (TFoS's TFNode).
 *
 *   export default async function main(args, ctx) {
 *     const { cluster, server } = await TFNode.startClusterServer(ctx);
 *     if (ctx.jobName === 'ps') return server.join();
 *     const dist = TFNode.distributedOptimizer(server, tf.train.adam(1e-3));
 *     ...
 *   }
 */
import type { Optimizer } from '@tensorflow/tfjs';
import { ClusterServer, ClusterServerOptions, StartedCluster } from './cluster-server';
import { DistributedOptimizer, DistributedOptimizerOptions } from './distributed/optimizer';
import { DataFeed, DatasetFeedOptions } from './data-feed';
import { Feed } from './feed';
import { NO_DATA_HINT, sparkDataFeed } from './feeds';
import { InputMode } from '../protocol/input-mode';
import type { TrainingMetrics } from '../protocol/control';
import { runtimeOf, TFNodeContext } from './runtime';

const servers = new WeakMap<TFNodeContext, ClusterServer>();

/** Closes the cluster server a ctx started, if any (the trainer does this before it exits). */
export async function closeClusterServerOf(ctx: TFNodeContext, reason = 'trainer finished'): Promise<void> {
  const server = servers.get(ctx);
  if (server) await server.close(reason).catch(() => undefined);
}

export const TFNode = {
  /**
   * Starts this node's cluster server (collectives, parameter server) on the node's listening
   * socket and returns it with the cluster spec. Calling it again with the same ctx returns the
   * same server.
   */
  async startClusterServer(ctx: TFNodeContext, opts: ClusterServerOptions = {}): Promise<StartedCluster> {
    let server = servers.get(ctx);
    if (!server) {
      server = new ClusterServer(ctx, opts);
      servers.set(ctx, server);
    }
    return { cluster: ctx.clusterSpec, server };
  },

  /** Wraps a tfjs optimizer for data-parallel training over the cluster (docs/distributed.md). */
  distributedOptimizer(server: ClusterServer, optimizer: Optimizer, opts: DistributedOptimizerOptions = {}): DistributedOptimizer {
    return new DistributedOptimizer(server, optimizer, opts);
  },

  /**
   * This worker's data, with TFoS's DataFeed calls (nextBatch, shouldStop, batchResults, terminate)
   * in both input modes, so one training function serves both:
   *  - InputMode.SPARK: the next feed the driver starts (the run's `data`, or cluster.train() /
   *    inference());
   *  - InputMode.TENSORFLOW: shard ctx.workerNum of ctx.numWorkers of the dataset split given to
   *    the run (`--data PATH [--epochs E]`, i.e. ctx.data) or at `opts.path` (relative paths resolve
   *    with ctx.absolutePath), read straight from HDFS or disk.
   */
  async dataFeed(ctx: TFNodeContext, opts: DatasetFeedOptions & { path?: string } = {}): Promise<Feed> {
    if (ctx.inputMode === InputMode.SPARK) return sparkDataFeed(ctx);
    const splitPath = opts.path ?? ctx.data?.path;
    if (!splitPath) {
      throw new Error(
        `TFNode.dataFeed: this run was given no data to read (InputMode.TENSORFLOW): ${NO_DATA_HINT}, or pass { path } to TFNode.dataFeed`,
      );
    }
    if (ctx.workerNum < 0) throw new Error(`TFNode.dataFeed: ${ctx.jobName} nodes do not read training data`);
    const epochs = opts.epochs ?? (opts.path === undefined ? ctx.data?.epochs : undefined);
    return DataFeed.fromDataset(ctx.absolutePath(splitPath), { shard: ctx.workerNum, numShards: ctx.numWorkers, ...opts, epochs });
  },

  /**
   * Reports training progress to the driver: the driver's progress bar for the cluster
   * (`tfos run`) and the handle's 'metrics' events (TFCluster.run). Best effort, never blocks
   * training: a message that cannot be sent is dropped. Report from one node (the chief) per step.
   */
  reportMetrics(ctx: TFNodeContext, metrics: TrainingMetrics): void {
    if (!metrics || typeof metrics.step !== 'number' || !(metrics.step >= 0))
      throw new TypeError(`TFNode.reportMetrics: metrics.step must be a number >= 0, got ${String(metrics?.step)}`);
    runtimeOf(ctx)
      .control.send({ type: 'metrics', metrics })
      .catch(() => undefined);
  },

  /** TFoS's hdfs_path: resolves a path against the cluster's defaultFS and working directory. */
  hdfsPath(ctx: TFNodeContext, p: string): string {
    return ctx.absolutePath(p);
  },
};
