/**
 * The control protocol between the driver, the Spark-side launcher and the trainers: the
 * WebSocket messages between driver and trainers here, the launcher's in ./launcher.ts.
 * docs/protocol.md describes the flow.
 *
 * Transport: one HTTP server on the driver.
 *  - trainers (Node) hold a WebSocket at /v1/nodes and exchange the JSON messages below;
 *  - the launcher and executor tasks (Python, stdlib only) use plain HTTP under /v1/launcher/.
 * Every request and answer proves the per-cluster secret with a one-time HMAC, never the secret
 * itself (lib/protocol/control-auth.ts).
 */

import { InputMode } from './input-mode';

export const PROTOCOL_VERSION = 1;

export type JobName = 'ps' | 'chief' | 'worker' | 'evaluator';

/** host:port lists per job, as TensorFlow's ClusterSpec. */
export interface ClusterSpec {
  ps: string[];
  worker: string[];
  chief?: string[];
  evaluator?: string[];
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
  /**
   * How long ago (ms, measured on the trainer's host clock, so no clock skew) this node passed each
   * start-up phase before registering; the driver places them on its own timeline (lib/driver/phases.ts).
   */
  startup?: NodeStartupAges;
}

/** Ages of a node's start-up phases at the moment it registers (ms). */
export interface NodeStartupAges {
  /** The executor started the Python worker for the node task (its pyspark daemon, on the executor's first task). */
  pythonWorker?: number;
  /** The node task's Python code began. */
  task?: number;
  /** The Node trainer process started. */
  trainer: number;
  /** The trainer's own modules were loaded (its main() began). */
  loaded: number;
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
  inputMode: InputMode;
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

/** Driver → trainer, on the WebSocket. */
export type DriverToNode =
  /** Once every node has registered: this node's role and context. */
  | { type: 'cluster'; ctx: NodeContext }
  /** Stop: ps/evaluator nodes at the end of a run, every node when the cluster fails. */
  /**
   * graceSec: how long the node's function may still run before the trainer exits on its own
   * (a ps or evaluator finishing its closing work); absent: 3 s (the cluster failed).
   */
  | { type: 'shutdown'; reason: string; graceSec?: number }
  /** InputMode.SPARK: a feed is starting; Spark's feeding task will connect to the data port. */
  | { type: 'feed'; feedId: string; kind: 'train' | 'infer'; epochs: number }
  /** The feed failed on the Spark side; the worker's Feed rejects with this error. */
  | { type: 'feed-failed'; feedId: string; error: string }
  /** shutdown() began: no feed will start after the ones announced (a worker still waiting for one gives up). */
  | { type: 'no-more-feeds' };

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

/** Trainer → driver, on the WebSocket (register first, exactly once). */
export type NodeToDriver =
  | RegisterMessage
  | { type: 'progress'; message: string; data?: unknown }
  | { type: 'metrics'; metrics: TrainingMetrics }
  /** InputMode.SPARK feed start, seen by the trainer: Spark's feeding task connected, or its first record batch arrived. */
  | { type: 'phase'; phase: 'feed-connected' | 'first-batch'; feedId: string }
  | { type: 'result'; value: unknown }
  | { type: 'error'; message: string; stack?: string };

export const AUTH_HEADER = 'authorization';
