/**
 * Reservation bookkeeping: which node indexes have registered, with which Spark attempt.
 *
 * Node ids are the barrier stage's partition indexes, so they are unique by construction; a task
 * retried by Spark registers the same index with a higher attempt number and replaces the earlier
 * registration instead of adding a second node (TFoS's duplicate-id problem).
 */
import { JobName, RegisterMessage } from '../protocol/control';

export interface Registration extends RegisterMessage {
  job: JobName;
  taskIndex: number;
  registeredAt: number;
}

export type RegisterOutcome = { kind: 'added' } | { kind: 'replaced'; previous: Registration } | { kind: 'rejected'; reason: string };

export class Reservation {
  private readonly nodes = new Map<number, Registration>();

  constructor(readonly roles: ReadonlyArray<{ job: JobName; taskIndex: number }>) {}

  get size(): number {
    return this.roles.length;
  }

  register(msg: RegisterMessage): RegisterOutcome {
    if (!Number.isInteger(msg.nodeIndex) || msg.nodeIndex < 0 || msg.nodeIndex >= this.roles.length) {
      return { kind: 'rejected', reason: `node index ${msg.nodeIndex} is outside 0..${this.roles.length - 1}` };
    }
    const role = this.roles[msg.nodeIndex];
    const reg: Registration = { ...msg, job: role.job, taskIndex: role.taskIndex, registeredAt: Date.now() };
    const previous = this.nodes.get(msg.nodeIndex);
    if (previous && previous.attempt >= msg.attempt) {
      return {
        kind: 'rejected',
        reason: `node ${msg.nodeIndex} is already registered by attempt ${previous.attempt} (pid ${previous.pid} on ${previous.host}); attempt ${msg.attempt} is stale`,
      };
    }
    this.nodes.set(msg.nodeIndex, reg);
    return previous ? { kind: 'replaced', previous } : { kind: 'added' };
  }

  get registered(): number {
    return this.nodes.size;
  }

  get complete(): boolean {
    return this.nodes.size === this.roles.length;
  }

  /** Node indexes that have not registered, for the reservation-timeout error. */
  missing(): number[] {
    return this.roles.map((_, i) => i).filter((i) => !this.nodes.has(i));
  }

  get(nodeIndex: number): Registration | undefined {
    return this.nodes.get(nodeIndex);
  }

  all(): Registration[] {
    return [...this.nodes.values()].sort((a, b) => a.nodeIndex - b.nodeIndex);
  }
}

/**
 * Roles by node index, TFoS's order: ps first, then the chief (master node), workers, and the
 * evaluator last. Deterministic, so executor tasks know a node's role before it registers
 * (ps nodes must not claim a GPU).
 */
export function assignRoles(opts: {
  clusterSize: number;
  numPs: number;
  masterNode?: 'chief' | null;
  evalNode?: boolean;
}): Array<{ job: JobName; taskIndex: number }> {
  const { clusterSize, numPs } = opts;
  const chief = opts.masterNode === undefined ? 'chief' : opts.masterNode;
  const nonPs = clusterSize - numPs - (opts.evalNode ? 1 : 0);
  if (!Number.isInteger(clusterSize) || clusterSize < 1) throw new Error(`numExecutors must be a positive integer, got ${clusterSize}`);
  if (!Number.isInteger(numPs) || numPs < 0) throw new Error(`numPs must be a non-negative integer, got ${numPs}`);
  if (nonPs < 1) {
    throw new Error(`numExecutors=${clusterSize} leaves no worker after ${numPs} ps node(s)${opts.evalNode ? ' and 1 evaluator' : ''}`);
  }
  const roles: Array<{ job: JobName; taskIndex: number }> = [];
  for (let i = 0; i < numPs; i++) roles.push({ job: 'ps', taskIndex: i });
  let workers = 0;
  for (let i = 0; i < nonPs; i++) {
    if (i === 0 && chief === 'chief') roles.push({ job: 'chief', taskIndex: 0 });
    else roles.push({ job: 'worker', taskIndex: workers++ });
  }
  if (opts.evalNode) roles.push({ job: 'evaluator', taskIndex: 0 });
  return roles;
}
