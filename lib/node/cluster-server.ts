/**
 * The per-node server that TFNode.startClusterServer returns. Its address is this node's entry in
 * the cluster spec. ps nodes call join() and serve until the driver shuts the cluster down.
 */
import type { ClusterSpec } from '../protocol/control';
import { runtimeOf, TFNodeContext } from './runtime';

export class ClusterServer {
  /** host:port of this node, as listed in the cluster spec. */
  readonly target: string;

  constructor(private readonly ctx: TFNodeContext) {
    const rt = runtimeOf(ctx);
    this.target = `${rt.host}:${rt.port}`;
  }

  /** Resolves when the driver shuts the cluster down (what a ps node waits for). */
  async join(): Promise<void> {
    await runtimeOf(this.ctx).shutdown;
  }
}

export interface StartedCluster {
  cluster: ClusterSpec;
  server: ClusterServer;
}
