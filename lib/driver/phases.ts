/**
 * The phases of a run's start-up and of each feed's start, on the driver's clock: the handle's
 * 'phase' events, the timings `tfos run` prints once the cluster is reserved and once a feed's
 * first batch arrives, and what `npm run bench -- startup|feed` tabulates.
 *
 * Phases seen on another host (a node's Python worker, its trainer's start) arrive as "reached N ms
 * ago", measured on that host's own clock, and are placed back from the moment the driver hears of
 * them: clock skew between hosts never enters, only the message's transit time.
 */

/** A run's start-up, in the order it happens (docs/protocol.md, "Phases"). */
export const STARTUP_PHASES = [
  /** TFCluster.run called. */
  'run',
  /** The route handed the launcher to Spark (spark-submit started, Livy batch or statement accepted). */
  'submitted',
  /** The launcher (the Spark driver program) reached the driver: its JVM and Python are up. */
  'launcher-started',
  /** Its SparkContext is up: the application is registered with the master. */
  'spark-started',
  /** Spark offers a task slot for every node (executors started and registered). */
  'executors-granted',
  /** Per node: the executor started a Python worker for the node task. */
  'python-worker',
  /** Per node: the node task's Python code runs. */
  'task-started',
  /** Per node: the Node trainer process started. */
  'trainer-started',
  /** Per node: the trainer's modules are loaded. */
  'trainer-loaded',
  /** Per node: the trainer registered with the driver. */
  'registered',
  /** Every node registered; the cluster spec went out and run() resolves. */
  'reserved',
] as const;
export type StartupPhase = (typeof STARTUP_PHASES)[number];

/** One feed's start (InputMode.SPARK), in order. */
export const FEED_PHASES = [
  /** cluster.train() / inference() called (or TFCluster.run's own feed of `data`). */
  'feed-requested',
  /** The launcher opened the DataFrame (file listing, Parquet schema). */
  'feed-opened',
  /** The launcher submitted the feeding stage. */
  'feed-stage',
  /** Per worker: Spark's feeding task (a Python worker) connected to the trainer's data port. */
  'feed-connected',
  /** Per worker: the first record batch arrived in the trainer. */
  'first-batch',
] as const;
export type FeedPhase = (typeof FEED_PHASES)[number];
export type Phase = StartupPhase | FeedPhase;

/** Phases reached once per node (start-up) or per worker (feed); the others once per run or feed. */
const PER_NODE: ReadonlySet<Phase> = new Set<Phase>([
  'python-worker',
  'task-started',
  'trainer-started',
  'trainer-loaded',
  'registered',
  'feed-connected',
  'first-batch',
]);

export interface PhaseEvent {
  phase: Phase;
  /** When it was reached, ms since the epoch on the driver's clock. */
  at: number;
  /** Seconds since the run began (start-up phases) or since the feed was requested (feed phases). */
  seconds: number;
  nodeIndex?: number;
  feedId?: string;
}

/** One row of a summary: when the last node (the critical path) reached the phase, and the first. */
export interface PhaseTiming {
  phase: Phase;
  seconds: number;
  /** For per-node phases: when the first node reached it. */
  firstSeconds?: number;
}

export function isStartupPhase(p: string): p is StartupPhase {
  return (STARTUP_PHASES as readonly string[]).includes(p);
}

export function isFeedPhase(p: string): p is FeedPhase {
  return (FEED_PHASES as readonly string[]).includes(p);
}

export class PhaseLog {
  readonly events: PhaseEvent[] = [];
  private readonly feedOrigins = new Map<string, number>();

  /** `origin`: when TFCluster.run was called (ms since the epoch). */
  constructor(readonly origin = Date.now()) {}

  /**
   * Records that `phase` was reached now, or `agoMs` before now; never before `notBefore` (a pyspark
   * daemon reused from an earlier cluster started long before this run: its worker cost this run nothing).
   */
  mark(phase: Phase, opts: { agoMs?: number; nodeIndex?: number; feedId?: string; notBefore?: number; now?: number } = {}): PhaseEvent {
    const now = opts.now ?? Date.now();
    let at = now - Math.max(0, opts.agoMs ?? 0);
    if (opts.notBefore !== undefined) at = Math.max(at, opts.notBefore);
    let origin = this.origin;
    if (isFeedPhase(phase)) {
      if (phase === 'feed-requested' && opts.feedId !== undefined) this.feedOrigins.set(opts.feedId, at);
      origin = (opts.feedId !== undefined ? this.feedOrigins.get(opts.feedId) : undefined) ?? at;
    }
    const ev: PhaseEvent = { phase, at, seconds: (at - origin) / 1000 };
    if (opts.nodeIndex !== undefined) ev.nodeIndex = opts.nodeIndex;
    if (opts.feedId !== undefined) ev.feedId = opts.feedId;
    this.events.push(ev);
    return ev;
  }

  /** When the run's (or one node's) latest start-up phase so far was reached: the floor for node phases. */
  latestStartup(): number {
    return this.events.filter((e) => isStartupPhase(e.phase) && e.nodeIndex === undefined).reduce((a, e) => Math.max(a, e.at), this.origin);
  }

  /** Start-up phases reached so far, in order; per-node phases by their last node. */
  startup(): PhaseTiming[] {
    return summarize(
      STARTUP_PHASES,
      this.events.filter((e) => isStartupPhase(e.phase)),
    );
  }

  /** One feed's phases reached so far, in order, in seconds since it was requested. */
  feed(feedId: string): PhaseTiming[] {
    return summarize(
      FEED_PHASES,
      this.events.filter((e) => e.feedId === feedId),
    );
  }
}

function summarize(order: readonly Phase[], events: PhaseEvent[]): PhaseTiming[] {
  const rows: PhaseTiming[] = [];
  for (const phase of order) {
    const hits = events.filter((e) => e.phase === phase);
    if (!hits.length) continue;
    const secs = hits.map((e) => e.seconds);
    const row: PhaseTiming = { phase, seconds: Math.max(...secs) };
    if (PER_NODE.has(phase)) row.firstSeconds = Math.min(...secs);
    rows.push(row);
  }
  return rows;
}

/** Short names for printing. */
const LABELS: Record<Phase, string> = {
  run: 'run',
  submitted: 'submitted',
  'launcher-started': 'launcher',
  'spark-started': 'Spark app',
  'executors-granted': 'executors',
  'python-worker': 'Python workers',
  'task-started': 'node tasks',
  'trainer-started': 'trainers',
  'trainer-loaded': 'loaded',
  registered: 'registered',
  reserved: 'reserved',
  'feed-requested': 'requested',
  'feed-opened': 'opened',
  'feed-stage': 'stage',
  'feed-connected': 'connected',
  'first-batch': 'first batch',
};

export function phaseLabel(p: Phase): string {
  return LABELS[p];
}

/** "submitted 0.1 s · launcher 2.9 s · …" (the zero-time first phase left out). */
export function formatPhases(rows: PhaseTiming[], digits = 1): string {
  return rows
    .filter((r) => r.phase !== 'run' && r.phase !== 'feed-requested')
    .map((r) => `${LABELS[r.phase]} ${r.seconds.toFixed(digits)} s`)
    .join(' · ');
}
