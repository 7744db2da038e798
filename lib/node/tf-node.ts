/**
 * Node-side API used inside the user's training function (TFoS's TFNode).
 *
 *   export default async function main(args, ctx) {
 *     const { cluster, server } = await TFNode.startClusterServer(ctx);
 *     if (ctx.jobName === 'ps') return server.join();
 *     ...
 *   }
 */
import { ClusterServer, StartedCluster } from './cluster-server';
import { TFNodeContext } from './runtime';

export const TFNode = {
  /** Starts this node's cluster server and returns it with the cluster spec. */
  async startClusterServer(ctx: TFNodeContext): Promise<StartedCluster> {
    return { cluster: ctx.clusterSpec, server: new ClusterServer(ctx) };
  },

  /** TFoS's hdfs_path: resolves a path against the cluster's defaultFS and working directory. */
  hdfsPath(ctx: TFNodeContext, p: string): string {
    return ctx.absolutePath(p);
  },
};
