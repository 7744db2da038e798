/**
 * The control protocol between the driver, the Spark-side launcher and the trainers.
 * One versioned place for every message; docs/protocol.md describes the flow.
 *
 * Transport: one HTTP server on the driver.
 *  - trainers (Node) hold a WebSocket at /v1/nodes and exchange the JSON messages below;
 *  - the launcher and executor tasks (Python, stdlib only) use plain HTTP under /v1/launcher/.
 * Every request carries `Authorization: Bearer <secret>` (the per-cluster secret), never in a URL.
 */

export const PROTOCOL_VERSION = 1;

export type JobName = 'ps' | 'chief' | 'worker' | 'evaluator';

/** host:port lists per job, as TensorFlow's ClusterSpec. */
export interface ClusterSpec {
  ps: string[];
  worker: string[];
  chief?: string[];
  evaluator?: string[];
}

/** What the launcher fetches from GET /v1/launcher/job: everything it needs to start the nodes. */
export interface JobSpec {
  protocol: number;
  clusterId: string;
  appName: string;
  clusterSize: number;
  /** Role of each node index; index i is the i-th task of the barrier stage. */
  roles: Array<{ job: JobName; taskIndex: number }>;
  /** argv of the trainer process (node + the trainer entry script). */
  trainerCommand: string[];
  /** Extra environment for trainers (user's env plus ours). */
  trainerEnv: Record<string, string>;
  /** Trainers on ps nodes get no GPU even when the job asks for GPUs. */
  gpusPerNode: number;
  /** Seconds the node stage may take to start all trainers before the driver gives up. */
  reservationTimeoutSec: number;
  /** Extra task slots to hold free for InputMode.SPARK feeding tasks (one per worker). */
  feedSlots?: number;
}

/** Trainer → driver, first message on the WebSocket. */
export interface RegisterMessage {
  type: 'register';
  protocol: number;
  nodeIndex: number;
  /** Spark's attempt number of the barrier stage task; a retry must replace the earlier one. */
  attempt: number;
  executorId: string;
  host: string;
  /** Port of the trainer's cluster server (collectives / parameter server). */
  port: number;
  /** Port where Spark's feeding tasks stream data to this trainer (InputMode.SPARK). */
  dataPort: number;
  pid: number;
}

/** Per-node context, sent to each trainer once every node has registered. */
export interface NodeContext {
  clusterId: string;
  jobName: JobName;
  taskIndex: number;
  clusterSpec: ClusterSpec;
  numWorkers: number;
  executorId: string;
  workerNum: number;
  nodeIndex: number;
  defaultFS: string;
  workingDir: string;
  inputMode: string;
  logDir?: string;
  /**
   * The data given to the run (`tfos run --data PATH [--epochs E]`, TFCluster.run's `data`):
   * TFNode.dataFeed(ctx) reads this worker's shard of it (InputMode.TENSORFLOW) or Spark feeds it
   * (InputMode.SPARK). Absent when the run was given none.
   */
  data?: { path: string; epochs: number };
  /** The user's module, function and arguments. */
  module: string;
  fn: string;
  args: unknown;
}

export type DriverToNode =
  | { type: 'cluster'; ctx: NodeContext }
  | { type: 'shutdown'; reason: string }
  | { type: 'feed'; feedId: string; kind: 'train' | 'infer'; epochs: number }
  | { type: 'feed-failed'; feedId: string; error: string }
  /** shutdown() began: no feed will start after the ones announced (a worker still waiting for one gives up). */
  | { type: 'no-more-feeds' }
  | { type: 'command'; id: string; name: string; payload: unknown };

/**
 * A training function's progress, as numbers the driver can show (one bar for the cluster) and
 * hand to TFCluster users as 'metrics' events. Every field but `step` is optional.
 */
export interface TrainingMetrics {
  /** Global step reached. */
  step: number;
  /** Steps the run will take in all (for step/total and the ETA). */
  totalSteps?: number;
  /** Current epoch (0-based, fractional allowed) and the number of epochs. */
  epoch?: number;
  epochs?: number;
  /** Training images seen by all workers together, and their rate. */
  images?: number;
  imagesPerSec?: number;
  loss?: number;
  learningRate?: number;
  /** The latest evaluation: accuracy on how many test images. */
  testAccuracy?: number;
  testImages?: number;
  /** Seconds of training so far (continuing across resumes). */
  seconds?: number;
  /** The step this run resumed from (0 on a fresh start). */
  resumedFromStep?: number;
  /** A short free-form phase, e.g. 'evaluating', 'checkpoint'. */
  phase?: string;
}

export type NodeToDriver =
  | RegisterMessage
  | { type: 'progress'; message: string; data?: unknown }
  | { type: 'metrics'; metrics: TrainingMetrics }
  | { type: 'result'; value: unknown }
  | { type: 'error'; message: string; stack?: string }
  | { type: 'command-reply'; id: string; ok: boolean; payload?: unknown; error?: string };

/** Launcher → driver events (POST /v1/launcher/event). */
export type LauncherEvent =
  | { type: 'spark-started'; appId: string; master: string; uiUrl?: string; defaultFS?: string }
  | { type: 'nodes-finished'; results: Array<{ nodeIndex: number; exitCode: number }> }
  | { type: 'failed'; error: string }
  | { type: 'feed-epoch'; feedId: string; epoch: number; workers: Array<{ worker: number; rows: number; taken: number; terminated: boolean }> }
  | { type: 'feed-done'; feedId: string }
  | { type: 'feed-failed'; feedId: string; error: string }
  | { type: 'stopped' };

export const AUTH_HEADER = 'authorization';

export function bearer(secret: string): string {
  return `Bearer ${secret}`;
}
