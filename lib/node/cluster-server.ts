/**
 * The per-node server that TFNode.startClusterServer returns. Its address is this node's entry in
 * the cluster spec. ps nodes call join() and serve until the driver shuts the cluster down.
 *
 * It also carries the distributed layer (docs/distributed.md): collectives between the workers
 * (allReduce, broadcast, barrier) and the parameter-server service / client, all over the node's
 * one listening socket.
 */
import type { ClusterSpec } from '../protocol/control';
import type { ReduceOp } from './distributed/collectives';
import { DistributedOptions } from './distributed/group';
import { DistributedNode } from './distributed/node';
import { reduceBuffer } from './distributed/float-kernels';
import type { PsClient } from './distributed/ps';
import { runtimeOf, TFNodeContext } from './runtime';

export type ClusterServerOptions = DistributedOptions;

export class ClusterServer {
  /** host:port of this node, as listed in the cluster spec. */
  readonly target: string;
  /** The distributed layer (what DistributedOptimizer uses). */
  readonly distributed: DistributedNode;

  constructor(
    private readonly ctx: TFNodeContext,
    opts: ClusterServerOptions = {},
  ) {
    const rt = runtimeOf(ctx);
    this.target = `${rt.host}:${rt.port}`;
    this.distributed = new DistributedNode(ctx, { listener: rt.listener, secret: rt.secret }, opts);
    // A cluster shut down under a worker still in a collective fails it with a clear reason.
    rt.shutdown.then(
      (reason) => this.distributed.close(`the cluster was shut down (${reason})`),
      () => undefined,
    );
  }

  /** Rank among the workers of collectives (chief 0, then workers by workerNum); -1 on ps nodes. */
  get rank(): number {
    return this.distributed.rank;
  }

  /** Number of workers in collectives (chief + workers = ctx.numWorkers). */
  get size(): number {
    return this.distributed.size;
  }

  /**
   * Sums or averages `buf` across all workers, in place; resolves to `buf`. Any Float32Array
   * works; one from reduceBuffer() sums without staging copies.
   */
  allReduce(buf: Float32Array, op: ReduceOp = 'sum'): Promise<Float32Array> {
    return this.distributed.allReduce(buf, op);
  }

  /**
   * A zeroed Float32Array of `floats` that allReduce sums in place, without copies around the
   * sums (it lives in WebAssembly memory; DistributedOptimizer's fused gradients are such buffers).
   * Worth it for buffers reduced again and again.
   */
  reduceBuffer(floats: number): Float32Array {
    return reduceBuffer(floats);
  }

  /** Copies worker `root`'s `buf` into every worker's `buf`, in place; resolves to `buf`. */
  broadcast(buf: Float32Array, root = 0): Promise<Float32Array> {
    return this.distributed.broadcast(buf, root);
  }

  /** Resolves once every worker has reached the barrier. */
  barrier(): Promise<void> {
    return this.distributed.barrier();
  }

  /**
   * Runs work that keeps this worker away from collectives for a while (a chief-only checkpoint,
   * export or evaluation) without tripping the other workers' stall detection (timeoutMs).
   */
  whileBusy<T>(work: () => Promise<T> | T): Promise<T> {
    return this.distributed.whileBusy(work);
  }

  /** Client of the ps nodes (workers only). */
  get ps(): PsClient {
    return this.distributed.ps;
  }

  /** Resolves when the driver shuts the cluster down (what a ps node waits for), then closes. */
  async join(): Promise<void> {
    await runtimeOf(this.ctx).shutdown;
    await this.close();
  }

  /**
   * Closes this node's distributed connections (idempotent); resolves once peers have closed
   * their side (at most ~2 s). Awaiting it before returning from the training function gives
   * peers a clean goodbye.
   */
  close(reason?: string): Promise<void> {
    return this.distributed.close(reason);
  }
}

export interface StartedCluster {
  cluster: ClusterSpec;
  server: ClusterServer;
}
