/**
 * TFCluster.run: reserve Spark executors as TF nodes and start the user's function on each.
 *
 * Phases: create the cluster secret and the control server → submit the launcher through the
 * chosen route → nodes register → roles and cluster spec go out → run() resolves with the
 * handle; `handle.shutdown()` waits for the workers, stops ps nodes and the Spark application.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JobName, JobSpec, PROTOCOL_VERSION } from '../protocol/control';
import { InputMode } from '../protocol/input-mode';
import { silentLogger } from '../stack/log';
import { tfosPaths } from '../stack/paths';
import { provisionSpark } from '../stack/spark';
import { TFClusterHandle } from './cluster';
import { archiveLaunch, ArchiveOption } from './pack';
import { isLoopbackHost, localAddressTowards, targetHost } from './addresses';
import { ControlServer } from './control-server';
import { assignRoles, Reservation } from './reservation';
import { LivyRoute, LivyRouteOptions } from './routes/livy';
import { SparkRoute } from './routes/route';
import { SparkSubmitRoute } from './routes/spark-submit';

export type RouteOption =
  | { local: { cores?: number; conf?: Record<string, string> } }
  | { sparkSubmit: { master: string; conf?: Record<string, string>; extraArgs?: string[] } }
  | { livy: string | LivyRouteOptions };

export interface TFClusterRunOptions {
  /** Path of the user's module (CommonJS or ESM) exporting the training function. */
  module: string;
  /** Export to call; 'default' (the default) takes the default export or module.exports. */
  fn?: string;
  /** Any JSON value; the CLI passes the arguments after `--` as a string array. */
  args?: unknown;
  numExecutors: number;
  numPs?: number;
  inputMode?: InputMode;
  logDir?: string;
  tensorboard?: boolean;
  /** 'chief' (default) makes node numPs the chief; null gives only workers. */
  masterNode?: 'chief' | null;
  evalNode?: boolean;
  /** Seconds for all nodes to register (default 120). */
  reservationTimeout?: number;
  /**
   * Seconds a registered node may leave the driver's heartbeat unanswered before the cluster
   * fails naming it and its host (default 30): how a vanished host or cut link is noticed.
   */
  heartbeatTimeout?: number;
  /** Extra environment for every trainer process. */
  env?: Record<string, string>;
  /** How to reach Spark; default: an embedded local Spark (no services needed). */
  via?: RouteOption;
  appName?: string;
  /** WebHDFS endpoint trainers use for hdfs:// paths (InputMode.TENSORFLOW); sets TFOS_WEBHDFS. */
  webhdfs?: string;
  /** Filesystem for ctx.absolutePath (default: Spark's fs.defaultFS, else file://). */
  defaultFS?: string;
  workingDir?: string;
  /** GPUs per worker node, from Spark's resource scheduling (ps nodes get none). */
  gpusPerNode?: number;
  /**
   * Address to bind the control server; default 127.0.0.1 for local routes, else this machine's
   * address on the interface that routes to the master / Livy host (0.0.0.0 when the master names
   * no host, e.g. `yarn`).
   */
  controlBindHost?: string;
  /** Address trainers use to reach the driver (default: the bind host, or the cluster-facing address). */
  controlAdvertiseHost?: string;
  /** argv that starts a trainer on an executor (default: this Node binary + our trainer entry). */
  trainerCommand?: string[];
  /** A project packed with `tfos pack`, for executors that have no copy of it (see lib/driver/pack.ts). */
  archive?: ArchiveOption;
  /** Called with the handle as soon as it exists, before run() resolves: attach progress/log listeners. */
  onHandle?: (handle: TFClusterHandle) => void;
}

export const TRAINER_ENTRY = path.resolve(__dirname, '../node/trainer-main.js');

/**
 * The address of this machine that the route's cluster reaches (the control server's bind and
 * advertised address, and the Spark driver's for spark-submit): loopback for local targets, else
 * the interface that routes to the master or Livy host; undefined when the target names no host.
 */
async function clusterFacingAddress(via: RouteOption | undefined): Promise<string | undefined> {
  if (!via || 'local' in via) return '127.0.0.1';
  const target = targetHost('livy' in via ? (typeof via.livy === 'string' ? via.livy : via.livy.url) : via.sparkSubmit.master);
  if (target === undefined) return undefined;
  if (target === 'local' || isLoopbackHost(target)) return '127.0.0.1';
  return localAddressTowards(target);
}

async function makeRoute(opts: TFClusterRunOptions, slots: number, driverAddress: string | undefined): Promise<SparkRoute> {
  const via: RouteOption = opts.via ?? { local: {} };
  if ('livy' in via) {
    return new LivyRoute(typeof via.livy === 'string' ? { url: via.livy } : via.livy);
  }
  const spark = await provisionSpark(tfosPaths(), silentLogger);
  if ('sparkSubmit' in via) {
    const conf = { 'spark.executor.cores': '1', ...via.sparkSubmit.conf };
    return new SparkSubmitRoute(spark, { master: via.sparkSubmit.master, conf, extraArgs: via.sparkSubmit.extraArgs, driverAddress });
  }
  const local = via.local;
  return new SparkSubmitRoute(spark, { master: `local[${local.cores ?? slots}]`, conf: local.conf }, 'local');
}

function validate(opts: TFClusterRunOptions): void {
  if (!opts || typeof opts !== 'object') throw new TypeError('TFCluster.run needs an options object');
  if (typeof opts.module !== 'string' || !opts.module) throw new TypeError('TFCluster.run: options.module must be the path of your training module');
  const modulePath = path.resolve(opts.module);
  if (!fs.existsSync(modulePath)) throw new Error(`TFCluster.run: training module ${modulePath} does not exist`);
  if (opts.heartbeatTimeout !== undefined && !(opts.heartbeatTimeout > 0)) {
    throw new Error(`TFCluster.run: heartbeatTimeout must be a positive number of seconds, got ${opts.heartbeatTimeout}`);
  }
  if (opts.reservationTimeout !== undefined && !(opts.reservationTimeout > 0)) {
    throw new Error(`TFCluster.run: reservationTimeout must be a positive number of seconds, got ${opts.reservationTimeout}`);
  }
  if (opts.inputMode !== undefined && !Object.values(InputMode).includes(opts.inputMode)) {
    throw new Error(`TFCluster.run: inputMode must be one of ${Object.values(InputMode).join(', ')}, got ${String(opts.inputMode)}`);
  }
}

/**
 * Exactly as many one-core executors as the cluster has task slots: without a cap a standalone
 * master starts an executor JVM on every free core of every worker (most of them idle, all of
 * them competing for start-up CPU). A user's own conf still wins (routes apply it last).
 */
function executorCount(via: RouteOption | undefined, slots: number): Record<string, string> {
  if (!via || 'local' in via) return {};
  const master = 'sparkSubmit' in via ? via.sparkSubmit.master : undefined;
  if (master === undefined || master.startsWith('spark://')) return { 'spark.cores.max': String(slots) };
  return {};
}

/** Starts a TF cluster on Spark; resolves once every node has registered. */
export async function run(opts: TFClusterRunOptions): Promise<TFClusterHandle> {
  validate(opts);
  const roles = assignRoles({ clusterSize: opts.numExecutors, numPs: opts.numPs ?? 0, masterNode: opts.masterNode, evalNode: opts.evalNode });
  const clusterId = crypto.randomBytes(6).toString('hex');
  const secret = crypto.randomBytes(32).toString('hex');
  const appName = opts.appName ?? `tfjs-on-spark ${path.basename(opts.module)} (${clusterId})`;
  const reservationTimeoutMs = (opts.reservationTimeout ?? 120) * 1000;
  const deadline = Date.now() + reservationTimeoutMs;

  // The secret travels in a file only this user can read (never argv or Spark properties).
  const secretDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-'));
  const secretFile = path.join(secretDir, 'cluster.secret');
  fs.writeFileSync(secretFile, secret, { mode: 0o600 });

  const shipped = opts.archive ? archiveLaunch(opts.archive, opts.module) : undefined;
  const job: JobSpec = {
    protocol: PROTOCOL_VERSION,
    clusterId,
    appName,
    clusterSize: roles.length,
    roles,
    trainerCommand: opts.trainerCommand ?? shipped?.trainerCommand ?? [process.execPath, TRAINER_ENTRY],
    trainerEnv: { ...(opts.webhdfs ? { TFOS_WEBHDFS: opts.webhdfs } : {}), ...opts.env, TFOS_CLUSTER_ID: clusterId },
    gpusPerNode: opts.gpusPerNode ?? 0,
    reservationTimeoutSec: Math.ceil(reservationTimeoutMs / 1000),
    // InputMode.SPARK: each worker's feeding task needs a slot beside the node stage.
    feedSlots: opts.inputMode === InputMode.SPARK ? roles.filter((r) => r.job === 'chief' || r.job === 'worker').length : 0,
  };
  const facing = await clusterFacingAddress(opts.via);
  const bindHost = opts.controlBindHost ?? facing ?? '0.0.0.0';
  const advertise = opts.controlAdvertiseHost ?? (bindHost === '0.0.0.0' ? (facing ?? os.hostname()) : bindHost);
  // The launcher asks for the job when it starts: tell it how much of the reservation time is left.
  // A few seconds less than ours, so the launcher's more precise "Spark offered only k slots"
  // error arrives before the driver's generic reservation timeout.
  const server = new ControlServer(
    secret,
    () => ({ ...job, reservationTimeoutSec: Math.max(1, Math.floor((deadline - Date.now()) / 1000) - 3) }),
    (opts.heartbeatTimeout ?? 30) * 1000,
  );
  await server.listen(bindHost);
  const controlUrl = server.url(advertise);

  const handle = new TFClusterHandle({
    job,
    reservation: new Reservation(roles),
    server,
    secretFile,
    reservationTimeoutMs,
    inputMode: opts.inputMode ?? InputMode.TENSORFLOW,
    ctxBase: {
      clusterId,
      defaultFS: opts.defaultFS ?? 'file://',
      workingDir: path.resolve(opts.workingDir ?? process.cwd()),
      inputMode: opts.inputMode ?? InputMode.TENSORFLOW,
      logDir: opts.logDir,
      module: shipped?.module ?? path.resolve(opts.module),
      fn: opts.fn ?? 'default',
      args: opts.args ?? [],
    },
  });
  handle.once('failed', () => fs.rmSync(secretDir, { recursive: true, force: true }));
  opts.onHandle?.(handle);
  try {
    const slots = roles.length + (job.feedSlots ?? 0);
    const route = await makeRoute(opts, slots, facing);
    const conf: Record<string, string> = { ...shipped?.conf, ...executorCount(opts.via, slots) };
    if (job.gpusPerNode > 0) {
      conf['spark.task.resource.gpu.amount'] = String(job.gpusPerNode);
      conf['spark.executor.resource.gpu.amount'] = String(job.gpusPerNode);
    }
    const logFile = path.join(tfosPaths().logs, 'clusters', `${clusterId}.log`);
    const app = await route.submit({ appName, clusterSize: roles.length, controlUrl, secretFile, conf, logFile });
    handle.attachApp(app);
    await handle.waitReserved();
  } catch (err) {
    await handle.kill(err instanceof Error ? err.message : String(err));
    fs.rmSync(secretDir, { recursive: true, force: true });
    throw handle.error ?? err;
  }
  return handle;
}

export type { JobName };

/** TFoS's TFCluster module, as an object: `TFCluster.run(options)`. */
export const TFCluster = { run };
