/**
 * The driver's handle on a running TF cluster: the reservation, the nodes' state, their output,
 * and the one place where any failure (a node's error, a lost node, the Spark application ending,
 * a timeout) turns into stopping everything and rejecting with a message that names the node.
 */
import * as crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WebSocket } from 'ws';
import { sleep } from '../platform/sleep';
import { DriverToNode, NodeContext, NodeToDriver, RegisterMessage, TrainingMetrics } from '../protocol/control';
import { InputMode } from '../protocol/input-mode';
import { FeedSpec, JobSpec, LauncherEvent } from '../protocol/launcher';
import { ControlServer } from './control-server';
import { formatPhases, PhaseEvent, PhaseLog, Phase, isFeedPhase, isStartupPhase } from './phases';
import { Registration, Reservation } from './reservation';
import { SubmittedApp } from './routes/route';

export type ClusterState = 'reserving' | 'running' | 'stopping' | 'finished' | 'failed';

export interface NodeInfo {
  nodeIndex: number;
  job: string;
  taskIndex: number;
  executorId: string;
  host: string;
  port: number;
  dataPort: number;
  pid: number;
  attempt: number;
  state: 'running' | 'done' | 'failed';
  result?: unknown;
  error?: string;
}

export interface LogLine {
  nodeIndex: number;
  /** "worker:1" */
  label: string;
  line: string;
}

/** A dataset path (HDFS or local), or — in a Livy session — the name of a DataFrame defined there. */
export type FeedSource = string | { dataFrame: string };

export interface TrainOptions {
  epochs?: number;
  /** Spark data source format of `data` (default 'parquet'). */
  format?: string;
  /** Columns to feed (default: all). */
  columns?: string[];
  /** Seconds a feeding task waits for a trainer to take data before failing (default 600). */
  stallTimeout?: number;
}

export interface InferenceOptions {
  /** Where Spark writes the results (Parquet); must not exist unless `overwrite`. */
  output: string;
  /** Replace an existing `output`; the old copy is removed only once the new one is in place. */
  overwrite?: boolean;
  /** Spark DDL of the result columns the trainers return, e.g. 'prediction int' (default). */
  resultSchema?: string;
  /** Input column that keys each result row (default 'id'); copied into the output. */
  keyColumn?: string;
  format?: string;
  columns?: string[];
  stallTimeout?: number;
}

export interface FeedEpochReport {
  epoch: number;
  workers: Array<{ worker: number; rows: number; taken: number; terminated: boolean }>;
}

/** A node's TFNode.reportMetrics(), as the handle's 'metrics' event. */
export interface MetricsEvent extends TrainingMetrics {
  nodeIndex: number;
  /** "chief:0" */
  label: string;
}

export interface ProgressEvent {
  phase: 'submitted' | 'spark-started' | 'registering' | 'reserved' | 'feed' | 'node-finished' | 'stopping' | 'finished';
  message: string;
  registered?: number;
  total?: number;
}

/** shutdown()'s default bound on waiting for the workers to finish: 24 hours. */
export const DEFAULT_SHUTDOWN_TIMEOUT_SEC = 24 * 3600;

export class ClusterFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterFailedError';
  }
}

export interface ClusterConfig {
  job: JobSpec;
  reservation: Reservation;
  server: ControlServer;
  /** The launcher's one-time bootstrap token (a 0600 file), removed when the cluster ends. */
  tokenFile: string;
  /** The run's private directory (holding the token file), removed when the cluster ends. */
  runDir?: string;
  /** Fields of each node's ctx that come from the driver's options. */
  ctxBase: Omit<NodeContext, 'jobName' | 'taskIndex' | 'clusterSpec' | 'numWorkers' | 'executorId' | 'workerNum' | 'nodeIndex'>;
  reservationTimeoutMs: number;
  /** InputMode.SPARK when train()/inference() feed data through Spark. */
  inputMode: InputMode;
  /** How long a node may be gone without a word before the cluster fails (launcher's report wins if sooner). */
  lostNodeGraceMs?: number;
  /** When TFCluster.run was called (ms since the epoch): the origin of the start-up phases. */
  startedAt?: number;
  /** Seconds a ps/evaluator node may keep running after a normal shutdown (default 60). */
  shutdownGraceSec?: number;
}

export class TFClusterHandle extends EventEmitter {
  state: ClusterState = 'reserving';
  readonly nodes = new Map<number, NodeInfo>();
  sparkAppId?: string;
  sparkUiUrl?: string;
  sparkDefaultFS?: string;
  /** The start-up and feed-start phases so far (also emitted one by one as 'phase' events). */
  readonly phases: PhaseLog;
  /** InputMode.SPARK with the run's `data`: the feed TFCluster.run started; shutdown() waits for it. */
  dataFed?: Promise<FeedEpochReport[]>;
  private readonly feeds = new EventEmitter();
  private app?: SubmittedApp;
  private readonly sockets = new Map<number, WebSocket>();
  private failure?: ClusterFailedError;
  private readonly failedWaiters: Array<(err: ClusterFailedError) => void> = [];
  private readonly changeWaiters: Array<() => void> = [];
  private launcherFinished = false;
  private reservationTimer?: NodeJS.Timeout;
  private shutdownPromise?: Promise<Map<number, unknown>>;
  private releasing?: Promise<void>;

  constructor(private readonly cfg: ClusterConfig) {
    super();
    this.phases = new PhaseLog(cfg.startedAt ?? Date.now());
    this.phases.mark('run', { now: this.phases.origin });
    const s = cfg.server;
    s.on('register', (msg: RegisterMessage, ws: WebSocket) => this.onRegister(msg, ws));
    s.on('node-message', (i: number, attempt: number, msg: NodeToDriver) => this.onNodeMessage(i, attempt, msg));
    s.on('node-closed', (i: number, attempt: number) => this.onNodeClosed(i, attempt));
    s.on('node-unresponsive', (i: number, attempt: number, silentMs: number) => this.onNodeUnresponsive(i, attempt, silentMs));
    s.on('launcher-event', (ev: LauncherEvent) => this.onLauncherEvent(ev));
    // Refused connections are part of the run's record (never with secret material in them).
    // A second use of the bootstrap token: someone read it and holds the secret now. Stop.
    s.on('token-reuse', (remote: string, first: string) => {
      this.fail(
        `the launcher's one-time bootstrap token was presented again by ${remote} after ${first} had exchanged it: someone else read it (Livy log or API, a process list); the cluster was stopped so its secret is worthless`,
      );
    });
    s.on('auth-failure', (remote: string, what: string) => {
      this.emit('log', { nodeIndex: -1, label: 'driver', line: `control server refused ${remote}: ${what}` } satisfies LogLine);
    });
    s.on('log', (i: number, _attempt: number, line: string) => {
      const role = cfg.job.roles[i];
      this.emit('log', { nodeIndex: i, label: role ? `${role.job}:${role.taskIndex}` : `node${i}`, line } satisfies LogLine);
    });
  }

  get clusterSize(): number {
    return this.cfg.reservation.size;
  }

  /** This cluster's id: in its Spark application's name and every trainer's TFOS_CLUSTER_ID. */
  get clusterId(): string {
    return this.cfg.job.clusterId;
  }

  /** Called by TFCluster.run once the Spark application is submitted. */
  attachApp(app: SubmittedApp): void {
    this.app = app;
    // A Livy session may run the launcher before its statement's answer reaches us: never after it.
    const heardFrom = this.phases.events.find((e) => e.phase !== 'run');
    this.markPhase('submitted', { now: Math.min(Date.now(), heardFrom?.at ?? Infinity) });
    this.progress({ phase: 'submitted', message: `submitted ${app.describe}` });
    this.reservationTimer = setTimeout(() => this.onReservationTimeout(), this.cfg.reservationTimeoutMs);
    void app.exited.then((exit) => {
      this.launcherFinished = true;
      if (this.state === 'finished' || this.state === 'failed') return;
      // Every node returned before shutdown() was called (a notebook inspects results first): the
      // application had nothing left to run, which is no failure.
      const allReturned = this.nodes.size === this.clusterSize && [...this.nodes.values()].every((n) => n.state === 'done');
      if (!exit.ok || (this.state !== 'stopping' && !allReturned)) {
        // Give a launcher 'failed' event carrying the node's own error a moment to arrive first.
        setTimeout(() => {
          this.fail(
            `the Spark application ended before the cluster finished (${exit.detail})${exit.logTail ? `; its last output:\n${exit.logTail}` : ''}`,
          );
        }, 1500);
      }
      this.changed();
    });
  }

  /** Resolves once every node has registered and received the cluster spec. */
  waitReserved(): Promise<void> {
    return this.until(() => this.state !== 'reserving');
  }

  /**
   * Waits for the workers and chief to finish their function, then stops the ps and evaluator
   * nodes and the Spark application. Idempotent: later calls return the same promise.
   * Resolves to each node's returned value by node index. `timeout` (seconds, default
   * DEFAULT_SHUTDOWN_TIMEOUT_SEC = 24 h) bounds the whole wait: past it the cluster fails with an
   * error naming the nodes still running. Lost or hung nodes fail the cluster sooner on their own.
   */
  shutdown(opts: { timeout?: number } = {}): Promise<Map<number, unknown>> {
    const timeout = opts.timeout ?? DEFAULT_SHUTDOWN_TIMEOUT_SEC;
    if (!(timeout > 0) || !Number.isFinite(timeout))
      throw new RangeError(`shutdown(): timeout must be a positive number of seconds, got ${opts.timeout}`);
    this.shutdownPromise ??= this.doShutdown(timeout);
    return this.shutdownPromise;
  }

  /**
   * InputMode.SPARK: Spark reads `data` and streams each worker its share, `epochs` times (every
   * row exactly once per epoch across workers). Resolves with per-epoch row counts when the feed
   * is done; the trainers read it with TFNode.dataFeed(ctx).
   */
  async train(data: FeedSource, opts: TrainOptions = {}): Promise<FeedEpochReport[]> {
    const epochs = opts.epochs ?? 1;
    if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`train(): epochs must be a positive integer, got ${opts.epochs}`);
    const reports: FeedEpochReport[] = [];
    await this.runFeed('train', data, { epochs, format: opts.format, columns: opts.columns, stallTimeoutSec: opts.stallTimeout }, (r) =>
      reports.push(r),
    );
    return reports;
  }

  /** Starts feeding the run's `data` (TFCluster.run does this once reserved); a failed feed fails the cluster. */
  feedRunData(data: string, epochs: number): void {
    this.dataFed = this.train(data, { epochs }).catch((err: Error) => {
      this.fail(err.message);
      throw err;
    });
    this.dataFed.catch(() => undefined); // shutdown() or the user's await reports it
  }

  /**
   * InputMode.SPARK inference: rows of `data` stream to the workers, their results stream back and
   * Spark writes `output` with exactly one row per input row, keyed by `keyColumn`.
   */
  async inference(data: FeedSource, opts: InferenceOptions): Promise<{ output: string }> {
    if (!opts?.output) throw new Error('inference(): options.output (where to write the results) is required');
    const key = opts.keyColumn ?? 'id';
    const output = this.resolveDataPath(opts.output);
    await this.runFeed('infer', data, {
      epochs: 1,
      output,
      overwrite: Boolean(opts.overwrite),
      keyColumn: key,
      resultSchema: `${key} long, ${opts.resultSchema ?? 'prediction int'}`,
      format: opts.format,
      columns: opts.columns,
      stallTimeoutSec: opts.stallTimeout,
    });
    return { output };
  }

  private resolveDataPath(p: string): string {
    if (/^[a-z][a-z0-9+.-]*:/i.test(p)) return p;
    const fsUri = this.sparkDefaultFS ?? 'file:///';
    if (fsUri.startsWith('file:')) return `file://${path.resolve(p)}`;
    return p; // relative to the user's home on the cluster's filesystem, as Spark resolves it
  }

  private async runFeed(
    kind: FeedSpec['kind'],
    data: FeedSource,
    extra: Omit<FeedSpec, 'feedId' | 'kind' | 'path' | 'dataFrame' | 'targets'>,
    onEpoch?: (r: FeedEpochReport) => void,
  ): Promise<void> {
    const source = typeof data === 'string' ? { path: this.resolveDataPath(data) } : { dataFrame: data.dataFrame };
    const what = typeof data === 'string' ? data : `DataFrame '${data.dataFrame}'`;
    if (this.cfg.inputMode !== InputMode.SPARK) {
      throw new Error(
        `${kind === 'train' ? 'train' : 'inference'}() feeds data through Spark, which needs inputMode SPARK; with InputMode.TENSORFLOW the nodes read their data themselves`,
      );
    }
    if (this.state !== 'running') throw new Error(`cannot feed data: the cluster is ${this.state}`);
    const workers = [...this.nodes.values()]
      .filter((n) => n.job === 'chief' || n.job === 'worker')
      .sort((a, b) => (a.job === b.job ? a.taskIndex - b.taskIndex : a.job === 'chief' ? -1 : 1));
    const feedId = crypto.randomBytes(4).toString('hex');
    this.markPhase('feed-requested', { feedId });
    const epochs = extra.epochs;
    for (const w of workers) {
      const ws = this.sockets.get(w.nodeIndex);
      if (ws) this.sendTo(w.nodeIndex, ws, { type: 'feed', feedId, kind, epochs });
    }
    const done = new Promise<void>((resolve, reject) => {
      const onEvent = (ev: LauncherEvent) => {
        if (!('feedId' in ev) || ev.feedId !== feedId) return;
        if (ev.type === 'feed-epoch') {
          const r = { epoch: ev.epoch, workers: ev.workers };
          onEpoch?.(r);
          const rows = ev.workers.reduce((a, w) => a + w.rows, 0);
          this.progress({
            phase: 'feed',
            message: `feed ${feedId} epoch ${ev.epoch + 1}/${epochs}: ${rows} rows to ${ev.workers.length} workers`,
          });
        } else if (ev.type === 'feed-done') {
          this.feeds.off('event', onEvent);
          resolve();
        } else if (ev.type === 'feed-failed') {
          this.feeds.off('event', onEvent);
          for (const w of workers) {
            const ws = this.sockets.get(w.nodeIndex);
            if (ws) this.post(ws, { type: 'feed-failed', feedId, error: ev.error });
          }
          const error = new Error(`feeding ${what} failed: ${ev.error}`);
          // A trainer that died takes its feed task down with it. The node's own failure (its
          // error, or the lost-node verdict within the grace period) is the cause to report.
          const lost = workers.some((w) => w.state === 'failed' || !this.sockets.has(w.nodeIndex));
          if (!lost) return reject(error);
          const failed = new Promise<Error>((res) => (this.failure ? res(this.failure) : this.failedWaiters.push(res)));
          const grace = sleep((this.cfg.lostNodeGraceMs ?? 5000) + 1000, { keepAlive: false }).then(() => error);
          void Promise.race([failed, grace]).then(reject);
        }
      };
      this.feeds.on('event', onEvent);
    });
    this.cfg.server.sendLauncherCommand({
      type: 'feed',
      feed: { feedId, kind, ...source, targets: workers.map((w): [string, number] => [w.host, w.dataPort]), ...extra },
    });
    await Promise.race([done, this.until(() => false)]);
  }

  /** Stops everything now, without waiting for training to finish. */
  async kill(reason = 'killed by the driver'): Promise<void> {
    if (this.state !== 'finished' && this.state !== 'failed') this.fail(reason);
    await this.release();
  }

  get error(): ClusterFailedError | undefined {
    return this.failure;
  }

  private async doShutdown(timeoutSec: number): Promise<Map<number, unknown>> {
    const deadline = Date.now() + timeoutSec * 1000;
    const timedOut = () => {
      const running = [...this.nodes.values()]
        .filter((n) => n.state === 'running')
        .map((n) => `${n.job}:${n.taskIndex} (executor ${n.executorId})`);
      this.fail(`shutdown timed out after ${timeoutSec} s; still running: ${running.join(', ') || 'the Spark application'}`);
    };
    const timer = setTimeout(timedOut, timeoutSec * 1000);
    try {
      await this.waitReserved();
      // No feed starts after shutdown(): a worker still asking TFNode.dataFeed for one gets an error, not a hang.
      for (const ws of this.sockets.values()) this.post(ws, { type: 'no-more-feeds' });
      // A failed run-data feed has failed the cluster: shutdown() rejects with that
      // ClusterFailedError (the next wait), like every other failure, not with the feed's Error.
      if (this.dataFed) await this.dataFed.catch(() => undefined);
      const isService = (job: string) => job === 'ps' || job === 'evaluator';
      await this.until(() => [...this.nodes.values()].every((n) => isService(n.job) || n.state !== 'running'));
      this.state = 'stopping';
      this.progress({ phase: 'stopping', message: 'workers finished; stopping ps/evaluator nodes' });
      for (const [i, ws] of this.sockets) {
        if (this.nodes.get(i)?.state === 'running')
          this.sendTo(i, ws, { type: 'shutdown', reason: 'cluster shutdown', graceSec: this.cfg.shutdownGraceSec ?? 60 });
      }
      await this.until(() => [...this.nodes.values()].every((n) => n.state !== 'running'));
      await this.until(() => this.launcherFinished);
      if (Date.now() > deadline) timedOut();
      this.state = 'finished';
      this.progress({ phase: 'finished', message: 'cluster finished' });
      const results = new Map<number, unknown>();
      for (const n of this.nodes.values()) results.set(n.nodeIndex, n.result);
      return results;
    } finally {
      clearTimeout(timer);
      await this.release();
    }
  }

  private onRegister(msg: RegisterMessage, ws: WebSocket): void {
    if (this.state === 'failed' || this.state === 'finished') {
      ws.close(1013, 'cluster is no longer running');
      return;
    }
    const outcome = this.cfg.reservation.register(msg);
    if (outcome.kind === 'rejected') {
      ws.close(1008, outcome.reason.slice(0, 120));
      return;
    }
    if (outcome.kind === 'replaced') {
      // A Spark retry of this node: the earlier trainer is obsolete.
      this.sockets.get(msg.nodeIndex)?.close(1000, 'replaced by a newer attempt');
    }
    this.sockets.set(msg.nodeIndex, ws);
    this.markNodeStartup(msg);
    const reg = this.cfg.reservation.get(msg.nodeIndex)!;
    this.nodes.set(msg.nodeIndex, toNodeInfo(reg));
    this.progress({
      phase: 'registering',
      message: `node ${msg.nodeIndex} registered as ${reg.job}:${reg.taskIndex} (executor ${msg.executorId}, ${msg.host}:${msg.port}, pid ${msg.pid})`,
      registered: this.cfg.reservation.registered,
      total: this.clusterSize,
    });
    if (this.cfg.reservation.complete) {
      if (this.state === 'reserving') this.onReserved();
      // A node that re-registered after the reservation completed gets the same spec again.
      else this.sendContext(reg);
    }
    this.changed();
  }

  private clusterSpec(): NodeContext['clusterSpec'] {
    const spec: NodeContext['clusterSpec'] = { ps: [], worker: [] };
    for (const reg of this.cfg.reservation.all()) {
      const list = (spec[reg.job] ??= []);
      list[reg.taskIndex] = `${reg.host}:${reg.port}`;
    }
    return spec;
  }

  private onReserved(): void {
    clearTimeout(this.reservationTimer);
    this.state = 'running';
    for (const reg of this.cfg.reservation.all()) this.sendContext(reg);
    this.markPhase('reserved');
    const took = (Date.now() - this.phases.origin) / 1000;
    this.progress({
      phase: 'reserved',
      message: `all ${this.clusterSize} nodes registered in ${took.toFixed(1)} s (${formatPhases(this.phases.startup())}); cluster spec sent`,
      registered: this.clusterSize,
      total: this.clusterSize,
    });
  }

  private sendContext(reg: Registration): void {
    const spec = this.clusterSpec();
    const numWorkers = spec.worker.length + (spec.chief?.length ?? 0);
    const workerNum = reg.job === 'worker' ? reg.taskIndex + (spec.chief ? 1 : 0) : reg.job === 'chief' ? 0 : -1;
    const ctx: NodeContext = {
      ...this.cfg.ctxBase,
      jobName: reg.job,
      taskIndex: reg.taskIndex,
      clusterSpec: spec,
      numWorkers,
      executorId: reg.executorId,
      workerNum,
      nodeIndex: reg.nodeIndex,
    };
    const ws = this.sockets.get(reg.nodeIndex);
    if (ws) this.sendTo(reg.nodeIndex, ws, { type: 'cluster', ctx });
  }

  /** Sends (sealed for that trainer) without waiting; `onError` hears of a message that did not reach the socket. */
  private post(ws: WebSocket, msg: DriverToNode, onError?: (err: Error) => void): void {
    try {
      this.cfg.server.send(ws, msg, (err) => err && onError?.(err));
    } catch (err) {
      onError?.(err as Error);
    }
  }

  /** A message a node must get: if it cannot be sent, the node is lost and the cluster fails. */
  private sendTo(nodeIndex: number, ws: WebSocket, msg: DriverToNode): void {
    this.post(ws, msg, (err) => {
      if (this.sockets.get(nodeIndex) !== ws) return; // replaced by a newer attempt meanwhile
      const n = this.nodes.get(nodeIndex);
      const who = n ? `TF node ${n.job}:${n.taskIndex} (node ${nodeIndex}, executor ${n.executorId} on ${n.host})` : `TF node ${nodeIndex}`;
      this.fail(`could not send '${msg.type}' to ${who}: ${err.message}`);
    });
  }

  private onNodeMessage(i: number, attempt: number, msg: NodeToDriver): void {
    const node = this.nodes.get(i);
    if (!node || node.attempt !== attempt) return;
    if (msg.type === 'result') {
      node.state = 'done';
      node.result = msg.value;
      this.progress({ phase: 'node-finished', message: `${node.job}:${node.taskIndex} finished` });
    } else if (msg.type === 'error') {
      node.state = 'failed';
      node.error = msg.message;
      this.fail(`TF node ${node.job}:${node.taskIndex} (node ${i}, executor ${node.executorId} on ${node.host}) failed: ${msg.message}`);
    } else if (msg.type === 'progress') {
      this.emit('node-progress', { nodeIndex: i, message: msg.message, data: msg.data });
    } else if (msg.type === 'phase') {
      if (isFeedPhase(msg.phase)) this.markPhase(msg.phase, { nodeIndex: i, feedId: msg.feedId });
      if (msg.phase === 'first-batch') this.reportFeedStart(msg.feedId);
      return;
    } else if (msg.type === 'metrics') {
      this.emit('metrics', { ...msg.metrics, nodeIndex: i, label: `${node.job}:${node.taskIndex}` } satisfies MetricsEvent);
      return;
    }
    this.changed();
  }

  private onNodeUnresponsive(i: number, attempt: number, silentMs: number): void {
    const node = this.nodes.get(i);
    if (!node || node.attempt !== attempt || node.state !== 'running') return;
    if (this.state === 'failed' || this.state === 'finished') return;
    node.state = 'failed';
    this.fail(
      `TF node ${node.job}:${node.taskIndex} (node ${i}, executor ${node.executorId}) on host ${node.host} stopped answering: ` +
        `no heartbeat for ${(silentMs / 1000).toFixed(0)} s (host down or its network cut)`,
    );
  }

  private onNodeClosed(i: number, attempt: number): void {
    const node = this.nodes.get(i);
    if (!node || node.attempt !== attempt) return;
    this.sockets.delete(i);
    if (node.state !== 'running' || this.state === 'failed' || this.state === 'finished') return;
    // Gone without a result or error: it crashed or was killed. The executor task usually
    // reports the exit code and stderr within moments; otherwise fail with what we know.
    setTimeout(() => {
      if (node.state === 'running' && node.attempt === attempt && !this.sockets.has(i)) {
        node.state = 'failed';
        this.fail(
          `TF node ${node.job}:${node.taskIndex} (node ${i}, executor ${node.executorId} on ${node.host}, pid ${node.pid}) disconnected without reporting a result`,
        );
      }
    }, this.cfg.lostNodeGraceMs ?? 5000);
  }

  private onLauncherEvent(ev: LauncherEvent): void {
    switch (ev.type) {
      case 'phase':
        // Unknown phase names (a newer launcher) are ignored, not an error.
        if (isStartupPhase(ev.phase) || isFeedPhase(ev.phase))
          this.markPhase(ev.phase, { agoMs: ev.agoMs ?? 0, feedId: ev.feedId ?? undefined });
        return;
      case 'spark-started':
        this.markPhase('spark-started');
        this.sparkAppId = ev.appId;
        this.sparkUiUrl = ev.uiUrl ?? undefined;
        this.sparkDefaultFS = ev.defaultFS ?? undefined;
        this.progress({
          phase: 'spark-started',
          message: `Spark application ${ev.appId} started on ${ev.master}${ev.uiUrl ? ` (UI ${ev.uiUrl})` : ''}`,
        });
        break;
      case 'failed':
        this.fail(ev.error);
        break;
      case 'feed-epoch':
      case 'feed-done':
      case 'feed-failed':
        this.feeds.emit('event', ev);
        break;
      case 'nodes-finished':
      case 'stopped':
        this.launcherFinished = true;
        break;
    }
    this.changed();
  }

  private onReservationTimeout(): void {
    if (this.state !== 'reserving') return;
    const r = this.cfg.reservation;
    const missing = r.missing().map((i) => `node ${i} (${this.cfg.job.roles[i].job}:${this.cfg.job.roles[i].taskIndex})`);
    this.fail(
      `reservation timed out after ${this.cfg.reservationTimeoutMs / 1000} s: ${r.registered} of ${r.size} nodes registered; ` +
        `never registered: ${missing.join(', ')}${this.sparkAppId ? '' : ' (the Spark application never reported starting)'}`,
    );
  }

  private fail(message: string): void {
    if (this.failure || this.state === 'finished') return;
    this.failure = new ClusterFailedError(message);
    this.state = 'failed';
    clearTimeout(this.reservationTimer);
    for (const ws of this.sockets.values()) this.post(ws, { type: 'shutdown', reason: 'cluster failed' });
    this.emit('failed', this.failure);
    for (const w of this.failedWaiters.splice(0)) w(this.failure);
    void this.release();
  }

  /** Stops the Spark application and the control server; removes the secret. Once: every caller waits for the same release. */
  private release(): Promise<void> {
    this.releasing ??= this.doRelease();
    return this.releasing;
  }

  private async doRelease(): Promise<void> {
    clearTimeout(this.reservationTimer);
    if (this.state === 'failed') this.cfg.server.sendLauncherCommand({ type: 'shutdown', reason: 'cluster failed' });
    if (this.app) {
      // The launcher stops Spark itself on 'shutdown'; kill whatever is left after a grace period.
      const graceful = await Promise.race([
        this.app.exited.then(() => true),
        sleep(this.state === 'failed' ? 8000 : 30_000, { keepAlive: false }).then(() => false),
      ]);
      if (!graceful || this.state === 'failed') await this.app.kill();
    }
    await this.cfg.server.close();
    fs.rmSync(this.cfg.tokenFile, { force: true });
    if (this.cfg.runDir) fs.rmSync(this.cfg.runDir, { recursive: true, force: true });
    this.changed();
  }

  private markPhase(phase: Phase, opts: Parameters<PhaseLog['mark']>[1] = {}): PhaseEvent {
    const ev = this.phases.mark(phase, opts);
    this.emit('phase', ev);
    return ev;
  }

  /** A node's start-up phases (ages on its host's clock when it registered), then 'registered'. */
  private markNodeStartup(msg: RegisterMessage): void {
    const now = Date.now();
    const a = msg.startup;
    // Never before the run's last phase so far (a reused Python daemon), and in order.
    let floor = this.phases.latestStartup();
    const steps: Array<[Phase, number | undefined]> = [
      ['python-worker', a?.pythonWorker],
      ['task-started', a?.task],
      ['trainer-started', a?.trainer],
      ['trainer-loaded', a?.loaded],
      ['registered', 0],
    ];
    for (const [phase, ago] of steps) {
      if (ago === undefined || !Number.isFinite(ago)) continue;
      floor = this.markPhase(phase, { agoMs: ago, nodeIndex: msg.nodeIndex, notBefore: floor, now }).at;
    }
  }

  /** Prints (as progress) how the feed started, once every worker has its first batch. */
  private reportFeedStart(feedId: string): void {
    const workers = this.cfg.job.roles.filter((r) => r.job === 'chief' || r.job === 'worker').length;
    const firsts = this.phases.events.filter((e) => e.feedId === feedId && e.phase === 'first-batch').length;
    if (firsts !== workers) return;
    const rows = this.phases.feed(feedId);
    const last = rows.find((r) => r.phase === 'first-batch');
    this.progress({
      phase: 'feed',
      message: `feed ${feedId}: first batch in every worker ${last ? last.seconds.toFixed(2) : '?'} s after the request (${formatPhases(rows, 2)})`,
    });
  }

  private progress(ev: ProgressEvent): void {
    this.emit('progress', ev);
  }

  private changed(): void {
    for (const w of this.changeWaiters.splice(0)) w();
  }

  /** Resolves when cond() holds; rejects as soon as the cluster fails. */
  private until(cond: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.failure) return reject(this.failure);
        if (cond()) return resolve();
        this.changeWaiters.push(check);
      };
      this.failedWaiters.push(reject);
      check();
    });
  }
}

function toNodeInfo(reg: Registration): NodeInfo {
  return {
    nodeIndex: reg.nodeIndex,
    job: reg.job,
    taskIndex: reg.taskIndex,
    executorId: reg.executorId,
    host: reg.host,
    port: reg.port,
    dataPort: reg.dataPort,
    pid: reg.pid,
    attempt: reg.attempt,
    state: 'running',
  };
}
