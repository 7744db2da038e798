/**
 * PeerGroup: what collectives and the parameter-server code need of the node they run on — who
 * is in the cluster, how to dial a peer, the timeouts, and whether the node was closed. The node
 * (./node.ts) implements it; collectives.ts and ps.ts depend only on this small contract.
 */
import type { DialOptions } from './auth';
import type { DistributedError, PeerId } from './peers';
import type { ChannelCode } from './wire';

export interface DistributedOptions {
  /**
   * A peer that shows no sign of life, or a collective / ps step that makes no progress, for
   * this long fails every waiting call with an error naming the peer. Default 60 000 ms.
   */
  timeoutMs?: number;
  /** How long to wait for peers to come up and connect. Default max(timeoutMs, 120 000) ms. */
  connectTimeoutMs?: number;
  /** Chunk size of collective transfers (pipelining granularity). Default DEFAULT_CHUNK_BYTES. */
  chunkBytes?: number;
  /** Heartbeat interval. Default min(timeoutMs / 4, 5000) ms. */
  pingMs?: number;
  /** Where refused connections and how training steps run are reported (default: stderr, which reaches the driver's log). */
  log?: (line: string) => void;
}

/**
 * Collective transfers' chunk size unless DistributedOptions.chunkBytes says otherwise. Each chunk
 * is a frame, a send and a wake-up of the next worker: on 2 cores, 4 MiB chunks cost 3–4 workers
 * 10–15% less CPU per all-reduce of 4–16 M floats than 1 MiB ones, and 1.07 M floats on 2 workers
 * (one chunk per segment) take no longer (`npm run bench -- allreduce`).
 */
export const DEFAULT_CHUNK_BYTES = 4 << 20;

export interface ResolvedOptions {
  timeoutMs: number;
  connectTimeoutMs: number;
  chunkBytes: number;
  pingMs: number;
  log: (line: string) => void;
}

export function resolveOptions(o: DistributedOptions = {}): ResolvedOptions {
  const timeoutMs = o.timeoutMs ?? 60_000;
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0 (got ${timeoutMs})`);
  return {
    timeoutMs,
    connectTimeoutMs: o.connectTimeoutMs ?? Math.max(timeoutMs, 120_000),
    chunkBytes: Math.max(4, o.chunkBytes ?? DEFAULT_CHUNK_BYTES),
    pingMs: o.pingMs ?? Math.max(5, Math.min(timeoutMs / 4, 5000)),
    log: o.log ?? ((line) => console.error(line)),
  };
}

export interface PeerGroup {
  /** This node. */
  readonly self: PeerId;
  /** "worker:1 (host:port)", for messages. */
  readonly selfName: string;
  /** Chief and workers, in rank order (the collective group). */
  readonly workers: PeerId[];
  readonly psNodes: PeerId[];
  readonly opts: ResolvedOptions;
  /** Set once the node is closed; every wait then fails with it. */
  readonly closedError?: DistributedError;
  /** How to open an authenticated connection on `channel` to `target`. */
  dialOptions(channel: ChannelCode, target: PeerId): DialOptions;
}
