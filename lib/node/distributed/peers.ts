/** Who is who in a cluster spec, how peers are named in errors, and the error types. */
import type { ClusterSpec, JobName } from '../../protocol/control';

export const JOB_CODES: Record<JobName, number> = { ps: 1, chief: 2, worker: 3, evaluator: 4 };
const JOB_BY_CODE = new Map(Object.entries(JOB_CODES).map(([k, v]) => [v, k as JobName]));

export function jobOfCode(code: number): JobName | undefined {
  return JOB_BY_CODE.get(code);
}

export interface PeerId {
  job: JobName;
  index: number;
  /** host:port from the cluster spec. */
  addr: string;
  /** Position among the workers of collectives (chief first, then workers); -1 for other jobs. */
  rank: number;
}

/** "worker:1 10.0.0.7:40211": how every error names a peer. */
export function peerName(p: Pick<PeerId, 'job' | 'index' | 'addr'>): string {
  return `${p.job}:${p.index} ${p.addr}`;
}

/** The workers of collectives, ordered by workerNum: chief (if any) first, then worker 0, 1, ... */
export function workersOf(spec: ClusterSpec): PeerId[] {
  const out: PeerId[] = [];
  for (const [i, addr] of (spec.chief ?? []).entries()) out.push({ job: 'chief', index: i, addr, rank: out.length });
  for (const [i, addr] of spec.worker.entries()) out.push({ job: 'worker', index: i, addr, rank: out.length });
  return out;
}

export function psOf(spec: ClusterSpec): PeerId[] {
  return spec.ps.map((addr, i) => ({ job: 'ps' as const, index: i, addr, rank: -1 }));
}

export function findPeer(spec: ClusterSpec, job: JobName, index: number): PeerId | undefined {
  if (job === 'ps') return psOf(spec)[index];
  if (job === 'chief' || job === 'worker') return workersOf(spec).find((p) => p.job === job && p.index === index);
  const addr = spec.evaluator?.[index];
  return addr ? { job, index, addr, rank: -1 } : undefined;
}

export function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new Error(`bad address '${addr}' in the cluster spec (want host:port)`);
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) };
}

/** Any failure of the distributed layer. `peer` names the node at fault when one is known. */
export class DistributedError extends Error {
  constructor(
    message: string,
    readonly peer?: string,
  ) {
    super(message);
    this.name = 'DistributedError';
  }
}

/** The cluster secret did not match (either side). Never retried. */
export class AuthError extends DistributedError {
  constructor(message: string, peer?: string) {
    super(message, peer);
    this.name = 'AuthError';
  }
}

/** A handshake step that may succeed on a later try (peer not listening or not serving yet). */
export class RetryableError extends Error {}
