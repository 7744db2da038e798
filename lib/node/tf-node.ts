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
import { TFNodeContext } from './runtime';

const servers = new WeakMap<TFNodeContext, ClusterServer>();

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

  /** TFoS's hdfs_path: resolves a path against the cluster's defaultFS and working directory. */
  hdfsPath(ctx: TFNodeContext, p: string): string {
    return ctx.absolutePath(p);
  },
};
