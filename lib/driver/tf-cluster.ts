/**
 * TFCluster.run: reserve Spark executors as TF nodes and start the user's function on each.
 *
 * Phases: create the cluster secret and the control server → submit the launcher through the
 * chosen route → nodes register → roles and cluster spec go out → run() resolves with the
 * handle; `handle.shutdown()` waits for the workers, stops ps nodes and the Spark application.
 */
import { gpuTrainerEnv } from '../platform/gpu-build';
import * as crypto from 'node:crypto';
import * as dns from 'node:dns/promises';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClusterEnvironment, clusterEnvironment } from '../platform/cluster-env';
import { yarnResourceManagerHost } from '../platform/hadoop-conf';
import { JobName, PROTOCOL_VERSION } from '../protocol/control';
import { JobSpec } from '../protocol/launcher';
import { InputMode } from '../protocol/input-mode';
import { checkJsonArgs } from '../protocol/json-args';
import { tfosPaths } from '../platform/paths';
import { resolveSpark, sparkClassArchive } from '../platform/spark';
import { TFClusterHandle } from './cluster';
import { createRunDir } from './run-dir';
import { archiveLaunch, ArchiveOption } from './pack';
import { isLoopbackHost, localAddressTowards, targetHost } from './addresses';
import { ControlServer } from './control-server';
import { assignRoles, Reservation } from './reservation';
import { isTypeScriptModule, typeCheckModule } from './type-check';
import { AttachedOptions, AttachedRoute } from './routes/attached';
import { LivyRoute, LivyRouteOptions } from './routes/livy-route';
import { quickStartJvmConf, SparkRoute } from './routes/route';
import { SparkSubmitRoute } from './routes/spark-submit';

/**
 * How to reach Spark. A master or Livy URL left out is found the way every command finds it
 * (lib/platform/cluster-env.ts): SPARK_MASTER / TFOS_LIVY_URL, else the running `tfos stack`.
 */
export type RouteOption =
  | { local: { cores?: number; conf?: Record<string, string> } }
  | { sparkSubmit: { master?: string; conf?: Record<string, string>; extraArgs?: string[] } }
  | { livy: string | (Omit<LivyRouteOptions, 'url'> & { url?: string }) }
  /** The launcher of a hand-typed spark-submit started this process (see routes/attached.ts). */
  | { attached: AttachedOptions };

export interface TFClusterRunOptions {
  /** Path of the user's module (CommonJS or ESM) exporting the training function. */
  module: string;
  /**
   * A `.ts` module runs as is; it is type-checked against this package's types first (set false to
   * skip: e.g. a module checked by your own build).
   */
  typeCheck?: boolean;
  /** Export to call; 'default' (the default) takes the default export or module.exports. */
  fn?: string;
  /** Any JSON value; the CLI passes the arguments after `--` as a string array. */
  args?: unknown;
  numExecutors: number;
  numPs?: number;
  inputMode?: InputMode;
  /**
   * The run's data (`tfos run --data PATH`): a dataset split such as hdfs:///data/cifar10/train.
   * InputMode.TENSORFLOW: each worker's TFNode.dataFeed(ctx) reads its shard (ctx.data).
   * InputMode.SPARK: Spark starts feeding it as soon as the cluster is reserved (as cluster.train()
   * would); shutdown() waits for that feed.
   */
  data?: string;
  /** Passes over `data` (default 1). */
  epochs?: number;
  logDir?: string;
  /** 'chief' (default) makes node numPs the chief; null gives only workers. */
  masterNode?: 'chief' | null;
  evalNode?: boolean;
  /**
   * Seconds for all nodes to register (default 120), from when the route has submitted the Spark
   * application (for a Livy session: once the session is idle, which has a 10-minute limit of its own).
   */
  reservationTimeout?: number;
  /**
   * Seconds a registered node may leave the driver's heartbeat unanswered before the cluster
   * fails naming it and its host (default 30): how a vanished host or cut link is noticed.
   */
  heartbeatTimeout?: number;
  /**
   * Seconds the Spark side waits for this driver while it accepts the launcher's polls and does
   * not answer (default 180): its event loop is busy, e.g. a long synchronous call in the program
   * that started the cluster. Then the cluster stops (checked as each poll times out, about every
   * 17 s). A driver that is gone (its process or host) is given up after 20 s whatever this says.
   */
  driverSilenceTimeout?: number;
  /**
   * Seconds a ps or evaluator node may keep running its function once the workers are done and
   * shutdown() stops it (default 60): its closing work (a last evaluation, summaries, a save)
   * finishes; beyond that the trainer exits on its own. After a failure every node gets 3 s.
   */
  shutdownGrace?: number;
  /**
   * Extra environment for every trainer process. `TFOS_TFJS: 'gpu'` runs trainers on the GPU
   * build of tfjs-node (`tfos setup --gpu`; docs/native-tensorflow.md); LD_LIBRARY_PATH given
   * here goes before the executor's own.
   */
  env?: Record<string, string>;
  /** How to reach Spark; default: an embedded local Spark (no services needed). */
  via?: RouteOption;
  appName?: string;
  /**
   * WebHDFS endpoint trainers use for hdfs:// paths (InputMode.TENSORFLOW); sets TFOS_WEBHDFS.
   * Default: from HADOOP_CONF_DIR (the user's, or the running stack's) unless the route is local.
   */
  webhdfs?: string;
  /** Filesystem for ctx.absolutePath (default: fs.defaultFS of that HADOOP_CONF_DIR, else file://). */
  defaultFS?: string;
  workingDir?: string;
  /** GPUs per worker node, from Spark's resource scheduling (ps nodes get none); pair it with env TFOS_TFJS=gpu. */
  gpusPerNode?: number;
  /**
   * Address to bind the control server; default 127.0.0.1 for local routes, else this machine's
   * address on the interface that routes to the master / Livy host (this machine's own address when the
   * master names no host, e.g. `yarn`; never 0.0.0.0 unless asked).
   */
  controlBindHost?: string;
  /** Address trainers use to reach the driver (default: the bind host, or the cluster-facing address). */
  controlAdvertiseHost?: string;
  /** Port of the control server (default: any free port); a taken port fails run() naming it. */
  controlPort?: number;
  /** argv that starts a trainer on an executor (default: this Node binary + our trainer entry). */
  trainerCommand?: string[];
  /** A project packed with `tfos pack`, for executors that have no copy of it (see lib/driver/pack.ts). */
  archive?: ArchiveOption;
  /**
   * Stop the cluster when this process gets SIGINT (a notebook's kernel interrupt, Ctrl-C), instead
   * of leaving it running behind an interrupted await; the process itself goes on.
   */
  stopOnInterrupt?: boolean;
  /** Called with the handle as soon as it exists, before run() resolves: attach progress/log listeners. */
  onHandle?: (handle: TFClusterHandle) => void;
}

export const TRAINER_ENTRY = path.resolve(__dirname, '../node/trainer-main.js');

/** The route with its master / Livy URL filled in from the environment or the running stack. */
function resolveRoute(via: RouteOption | undefined, env: ClusterEnvironment): RouteOption {
  if (!via || 'local' in via || 'attached' in via) return via ?? { local: {} };
  if ('livy' in via) {
    const o = typeof via.livy === 'string' ? { url: via.livy } : via.livy;
    const url = o.url ?? env.livyUrl;
    if (!url)
      throw new Error(
        'TFCluster.run: the Livy route needs a URL: pass via.livy.url (tfos run --livy URL), set TFOS_LIVY_URL, or start `tfos stack up`',
      );
    return { livy: { ...o, url } };
  }
  const master = via.sparkSubmit.master ?? env.sparkMaster;
  if (!master)
    throw new Error(
      'TFCluster.run: the spark-submit route needs a master: pass via.sparkSubmit.master (tfos run --master URL), set SPARK_MASTER, or start `tfos stack up`',
    );
  return { sparkSubmit: { ...via.sparkSubmit, master } };
}

function routeTarget(via: RouteOption): string {
  if ('local' in via) return 'local';
  if ('attached' in via) return via.attached.master;
  return 'livy' in via ? (typeof via.livy === 'string' ? via.livy : via.livy.url!) : via.sparkSubmit.master!;
}

/**
 * The address of this machine that the route's cluster reaches (the control server's bind and
 * advertised address, and the Spark driver's for spark-submit): loopback for local targets, else
 * the interface that routes to the master or Livy host — never the host name, which often
 * resolves to 127.0.0.1 in /etc/hosts; undefined when the target names no host (e.g. `yarn`).
 */
async function clusterFacingAddress(via: RouteOption, hadoopConfDir: string | undefined): Promise<string | undefined> {
  const name = routeTarget(via);
  // `--master yarn` names no host: the ResourceManager's is in the Hadoop configuration.
  const target = name === 'yarn' ? (hadoopConfDir ? yarnResourceManagerHost(hadoopConfDir) : undefined) : targetHost(name);
  if (target === undefined) return undefined;
  if (target === 'local' || isLoopbackHost(target)) return '127.0.0.1';
  return localAddressTowards(target);
}

async function makeRoute(
  via: RouteOption,
  slots: number,
  hdfs: ClusterEnvironment['hdfs'],
  driverAddress: string | undefined,
): Promise<SparkRoute> {
  if ('attached' in via) return new AttachedRoute(via.attached);
  if ('livy' in via) {
    return new LivyRoute(typeof via.livy === 'string' ? { url: via.livy } : { ...via.livy, url: via.livy.url! });
  }
  // Read-only: a run never installs; an unprovisioned machine fails here with "run `tfos setup`".
  const spark = resolveSpark();
  if ('sparkSubmit' in via) {
    const conf = { 'spark.executor.cores': '1', ...via.sparkSubmit.conf };
    // Spark's own hdfs:/// and relative paths follow the same Hadoop configuration as ours.
    return new SparkSubmitRoute(spark, {
      master: via.sparkSubmit.master!,
      conf,
      extraArgs: via.sparkSubmit.extraArgs,
      hadoopConfDir: hdfs?.configDir,
      driverAddress,
    });
  }
  const local = via.local;
  return new SparkSubmitRoute(spark, { master: `local[${local.cores ?? slots}]`, conf: local.conf }, 'local');
}

function validate(opts: TFClusterRunOptions): void {
  if (!opts || typeof opts !== 'object') throw new TypeError('TFCluster.run needs an options object');
  if (typeof opts.module !== 'string' || !opts.module)
    throw new TypeError('TFCluster.run: options.module must be the path of your training module');
  const modulePath = path.resolve(opts.module);
  if (!fs.existsSync(modulePath)) throw new Error(`TFCluster.run: training module ${modulePath} does not exist`);
  if (isTypeScriptModule(modulePath) && opts.typeCheck !== false) typeCheckModule(modulePath);
  // TFoS's TFCluster.run(tensorboard=True) started a TensorBoard process; this one never did.
  // Refused by name, so a port from TFoS fails here instead of silently doing nothing.
  if ('tensorboard' in opts) {
    throw new Error(
      'TFCluster.run: there is no tensorboard option: write summaries from your training function into logDir and run `tensorboard --logdir` on it',
    );
  }
  if (opts.heartbeatTimeout !== undefined && !(opts.heartbeatTimeout > 0)) {
    throw new Error(`TFCluster.run: heartbeatTimeout must be a positive number of seconds, got ${opts.heartbeatTimeout}`);
  }
  if (opts.driverSilenceTimeout !== undefined && !(opts.driverSilenceTimeout > 0)) {
    throw new Error(`TFCluster.run: driverSilenceTimeout must be a positive number of seconds, got ${opts.driverSilenceTimeout}`);
  }
  if (opts.shutdownGrace !== undefined && !(opts.shutdownGrace > 0)) {
    throw new Error(`TFCluster.run: shutdownGrace must be a positive number of seconds, got ${opts.shutdownGrace}`);
  }
  if (opts.reservationTimeout !== undefined && !(opts.reservationTimeout > 0)) {
    throw new Error(`TFCluster.run: reservationTimeout must be a positive number of seconds, got ${opts.reservationTimeout}`);
  }
  // Trainers get args as JSON: refuse what JSON would change or drop, before anything starts.
  if (opts.args !== undefined) checkJsonArgs(opts.args);
  if (opts.data !== undefined && (typeof opts.data !== 'string' || !opts.data))
    throw new TypeError('TFCluster.run: data must be a dataset path (e.g. hdfs:///data/cifar10/train)');
  if (opts.epochs !== undefined && !(Number.isInteger(opts.epochs) && opts.epochs >= 1)) {
    throw new Error(`TFCluster.run: epochs must be a positive integer, got ${opts.epochs}`);
  }
  if (opts.epochs !== undefined && opts.data === undefined) throw new Error('TFCluster.run: epochs needs data (the dataset to pass over)');
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
  // Local runs need no cap; an attached run's application is already running (the user's submit).
  if (!via || 'local' in via || 'attached' in via) return {};
  // Fewer, wider executors (the user's spark.executor.cores) start fewer JVMs: the cap is whole executors.
  const userConf = 'livy' in via ? (typeof via.livy === 'string' ? undefined : via.livy.conf) : via.sparkSubmit.conf;
  const perExecutor = Math.max(1, Math.floor(Number(userConf?.['spark.executor.cores'] ?? 1)) || 1);
  const cap = { 'spark.cores.max': String(Math.ceil(slots / perExecutor) * perExecutor) };
  // YARN and Kubernetes: static allocation, one single-core executor per slot.
  const instances = { 'spark.executor.instances': String(Math.ceil(slots / perExecutor)) };
  if ('livy' in via) return { ...cap, ...instances }; // Livy's master is not known here: both
  return via.sparkSubmit.master?.startsWith('spark://') ? cap : instances;
}

/**
 * Spark's class archive, for a cluster whose JVMs run on this machine (a loopback master or Livy):
 * elsewhere the file would be missing, and a JVM told to map a missing archive maps none at all.
 */
function localClassArchive(facing: string | undefined): string | undefined {
  if (facing !== '127.0.0.1') return undefined;
  try {
    return sparkClassArchive(resolveSpark());
  } catch {
    return undefined; // no Spark here (a Livy-only driver machine): nothing to map
  }
}

/** What the running `tfos stack --yarn` asks of its YARN applications, when we submit to it. */
function yarnConf(via: RouteOption, found: ClusterEnvironment, hadoopConfDir: string | undefined): Record<string, string> {
  if (!('sparkSubmit' in via) || via.sparkSubmit.master !== 'yarn') return {};
  const stack = found.stack;
  if (!stack?.yarn || !hadoopConfDir || stack.endpoints.hadoopConfDir !== hadoopConfDir) return {};
  return stack.yarn.sparkConf ?? {};
}

/** Starts a TF cluster on Spark; resolves once every node has registered. */
export async function run(opts: TFClusterRunOptions): Promise<TFClusterHandle> {
  const startedAt = Date.now();
  validate(opts);
  const found = clusterEnvironment();
  const via = resolveRoute(opts.via, found);
  // An embedded local Spark reads local files unless the user's own HADOOP_CONF_DIR says otherwise.
  const hdfs = 'local' in via && !process.env.HADOOP_CONF_DIR?.trim() ? undefined : found.hdfs;
  const webhdfs = opts.webhdfs ?? hdfs?.webhdfs;
  const roles = assignRoles({
    clusterSize: opts.numExecutors,
    numPs: opts.numPs ?? 0,
    masterNode: opts.masterNode,
    evalNode: opts.evalNode,
  });
  const clusterId = crypto.randomBytes(6).toString('hex');
  const secret = crypto.randomBytes(32).toString('hex');
  const appName = opts.appName ?? `tfjs-on-spark ${path.basename(opts.module)} (${clusterId})`;
  const reservationTimeoutMs = (opts.reservationTimeout ?? 120) * 1000;
  // The reservation is timed from when the route has the Spark application running (the handle's
  // timer starts in attachApp), not from this call: a Livy session may take minutes to start, and
  // must not eat the launcher's time to find slots. Until then the launcher gets the full timeout.
  let deadline: number | undefined;

  // The secret never leaves this process in the clear: routes hand the launcher a one-time
  // bootstrap token instead, which its first request exchanges for the secret (sealed with the
  // token; docs/security.md). On spark-submit routes the token is in a file only this user reads.
  // createRunDir also removes what killed drivers left behind (their run directories).
  const bootstrapToken = crypto.randomBytes(32).toString('hex');
  const secretDir = createRunDir();
  const tokenFile = path.join(secretDir, 'bootstrap.token');
  fs.writeFileSync(tokenFile, bootstrapToken, { mode: 0o600 });

  const shipped = opts.archive ? archiveLaunch(opts.archive, opts.module) : undefined;
  const job: JobSpec = {
    protocol: PROTOCOL_VERSION,
    clusterId,
    appName,
    clusterSize: roles.length,
    roles,
    trainerCommand: opts.trainerCommand ?? shipped?.trainerCommand ?? [process.execPath, TRAINER_ENTRY],
    trainerEnv: {
      ...(webhdfs ? { TFOS_WEBHDFS: webhdfs } : {}),
      ...(hdfs ? { TFOS_DEFAULT_FS: opts.defaultFS ?? hdfs.defaultFS } : {}),
      ...opts.env,
      // TFOS_TFJS=gpu: the GPU build of this machine's TFOS_HOME and its CUDA library path.
      ...gpuTrainerEnv(opts.env),
      TFOS_CLUSTER_ID: clusterId,
      // A registered trainer waits at most this long for its ctx (the rest of the reservation).
      TFOS_CTX_TIMEOUT_SEC: String(Math.ceil(reservationTimeoutMs / 1000) + 30),
    },
    gpusPerNode: opts.gpusPerNode ?? 0,
    reservationTimeoutSec: Math.ceil(reservationTimeoutMs / 1000),
    // InputMode.SPARK: each worker's feeding task needs a slot beside the node stage.
    feedSlots: opts.inputMode === InputMode.SPARK ? roles.filter((r) => r.job === 'chief' || r.job === 'worker').length : 0,
    ...(opts.inputMode === InputMode.SPARK && opts.data ? { feedData: { path: opts.data } } : {}),
    ...(opts.driverSilenceTimeout !== undefined ? { driverSilenceSec: Math.ceil(opts.driverSilenceTimeout) } : {}),
  };
  const facing = await clusterFacingAddress(via, hdfs?.configDir);
  // One interface, the advertised one: never 0.0.0.0 unless asked for (a master that names no
  // host and no ResourceManager in the configuration gets this machine's own address).
  const bindHost =
    opts.controlBindHost ??
    facing ??
    (await dns.lookup(os.hostname()).then(
      (r) => r.address,
      () => '0.0.0.0',
    ));
  const advertise = opts.controlAdvertiseHost ?? (bindHost === '0.0.0.0' ? (facing ?? os.hostname()) : bindHost);
  // The launcher asks for the job when it starts: tell it how much of the reservation time is left.
  // A few seconds less than ours, so the launcher's more precise "Spark offered only k slots"
  // error arrives before the driver's generic reservation timeout.
  const server = new ControlServer(
    secret,
    () => ({
      ...job,
      reservationTimeoutSec: Math.max(1, Math.floor(((deadline ?? Date.now() + reservationTimeoutMs) - Date.now()) / 1000) - 3),
    }),
    bootstrapToken,
    (opts.heartbeatTimeout ?? 30) * 1000,
  );
  await server.listen(bindHost, opts.controlPort ?? 0);
  const controlUrl = server.url(advertise);

  const handle = new TFClusterHandle({
    job,
    reservation: new Reservation(roles),
    server,
    tokenFile,
    runDir: secretDir,
    reservationTimeoutMs,
    shutdownGraceSec: opts.shutdownGrace,
    inputMode: opts.inputMode ?? InputMode.TENSORFLOW,
    startedAt,
    ctxBase: {
      clusterId,
      defaultFS: opts.defaultFS ?? hdfs?.defaultFS ?? 'file://',
      workingDir: path.resolve(opts.workingDir ?? process.cwd()),
      inputMode: opts.inputMode ?? InputMode.TENSORFLOW,
      logDir: opts.logDir,
      data: opts.data ? { path: opts.data, epochs: opts.epochs ?? 1 } : undefined,
      module: shipped?.module ?? path.resolve(opts.module),
      fn: opts.fn ?? 'default',
      args: opts.args ?? [],
    },
  });
  handle.once('failed', () => fs.rmSync(secretDir, { recursive: true, force: true }));
  if (opts.stopOnInterrupt) {
    const onInterrupt = () => void handle.kill('interrupted (SIGINT)');
    process.on('SIGINT', onInterrupt);
    const forget = () => process.off('SIGINT', onInterrupt);
    handle.once('failed', forget);
    handle.on('progress', (p: { phase: string }) => p.phase === 'finished' && forget());
  }
  opts.onHandle?.(handle);
  try {
    const slots = roles.length + (job.feedSlots ?? 0);
    const route = await makeRoute(via, slots, hdfs, facing);
    const conf: Record<string, string> = {
      ...('attached' in via
        ? {}
        : quickStartJvmConf({ local: 'local' in via, feeds: job.feedSlots! > 0, archive: localClassArchive(facing) })),
      ...shipped?.conf,
      ...executorCount(via, slots),
      ...yarnConf(via, found, hdfs?.configDir),
    };
    if (job.gpusPerNode > 0) {
      conf['spark.task.resource.gpu.amount'] = String(job.gpusPerNode);
      conf['spark.executor.resource.gpu.amount'] = String(job.gpusPerNode);
    }
    const logFile = path.join(tfosPaths().logs, 'clusters', `${clusterId}.log`);
    const app = await route.submit({
      appName,
      clusterSize: roles.length,
      controlUrl,
      tokenFile,
      conf,
      logFile,
      launcherLastSeen: () => server.lastLauncherContact,
      launcherEnded: () => server.launcherEnded,
    });
    deadline = Date.now() + reservationTimeoutMs;
    handle.attachApp(app);
    await handle.waitReserved();
    if (opts.data && opts.inputMode === InputMode.SPARK) handle.feedRunData(opts.data, opts.epochs ?? 1);
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
