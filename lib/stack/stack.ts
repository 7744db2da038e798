/**
 * `tfos stack up | status | down`: a local cluster on loopback — HDFS (NameNode + DataNode), a
 * Spark standalone master with N workers, and Livy pointed at that master.
 *
 * State lives in <TFOS_HOME>/stack/state.json (pids, ports, endpoints), so any later process (the
 * test run, `tfos run`, a notebook) finds the running stack, and `down` can stop exactly what `up`
 * started. A user's own HDFS (HADOOP_CONF_DIR) or Livy (TFOS_LIVY_URL) is used instead of starting ours.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Logger, silentLogger } from '../platform/log';
import { TfosPaths, tfosPaths } from '../platform/paths';
import { bootId, isAlive } from '../platform/process-group';
import { recordedStackProcessAlive, type RecordedStack } from '../platform/cluster-env';
import { sleep } from '../platform/sleep';
import { externalHdfs, hdfsHealthy, hdfsServices, provisionHadoop } from './hadoop';
import { livyHealthy, livyService, provisionLivy } from './livy-server';
import { createNetwork, destroyNetwork, leftovers, NetworkPlan, planNetwork, setHostLink } from './netns';
import { Placement, ServiceSpec } from './service';
import { provisionYarn, yarnServices, YarnStatus, yarnStatus } from './yarn';
import { aliveWorkers, masterState, provisionSpark, sparkServices } from './spark';
import { assertPortsFree, RunningService, startService, stopService } from './supervisor';

export interface StackPorts {
  sparkMaster: number;
  sparkMasterUi: number;
  /** Worker i's web UI listens on sparkWorkerUiBase + i. */
  sparkWorkerUiBase: number;
  nameNodeRpc: number;
  nameNodeHttp: number;
  livy: number;
}

export const DEFAULT_PORTS: StackPorts = {
  sparkMaster: 7077,
  sparkMasterUi: 8080,
  sparkWorkerUiBase: 8081,
  nameNodeRpc: 8020,
  nameNodeHttp: 9870,
  livy: 8998,
};

export interface StackUpOptions {
  workers?: number;
  /**
   * Build N (>= 3) separate network hosts with network namespaces (see netns.ts): host a runs the
   * Spark master, NameNode and Livy; every other host a Spark worker and a DataNode. The driver
   * stays in this (the root) namespace and reaches them through the bridge.
   */
  hosts?: number;
  /**
   * Also start YARN: a ResourceManager (beside the master) and a NodeManager per worker host (one
   * on loopback), from Hadoop's own daemons; the stack's HADOOP_CONF_DIR then names it too.
   */
  yarn?: boolean;
  workerCores?: number;
  workerMemory?: string;
  ports?: Partial<StackPorts>;
  log?: Logger;
  env?: NodeJS.ProcessEnv;
}

/** What `tfos stack status --json` prints. */
export interface StackStatus {
  spark: { master: string; ui: string; workers: number; healthy: boolean };
  hdfs: { defaultFS: string; webhdfs: string; healthy: boolean; configDir?: string; external?: boolean };
  /** sessions: interactive sessions are possible (REPL jars for Scala 2.12 configured, or the user's Livy). */
  livy: { url: string; healthy: boolean; sessions?: boolean; external?: boolean };
  /** Multi-host stacks only: each network host, its address and what runs there. */
  hosts?: StackHost[];
  /** Multi-host stacks only: the hosts' subnet and the address the root namespace has on it. */
  network?: { id: string; subnet: string; gateway: string; bridge: string };
  /** Stacks started with --yarn only. */
  yarn?: YarnStatus;
}

export interface StackHost {
  name: string;
  address: string;
  roles: string[];
}

/** What state.json holds: the part other processes read (RecordedStack) plus what `down` needs. */
interface StackState extends RecordedStack {
  version: 1;
  startedAt: string;
  workers: number;
  ports: StackPorts;
  services: RunningService[];
  /** Recorded before any of it is created, so `down` removes it even after a crash of `up`. */
  network?: NetworkPlan;
  hosts?: StackHost[];
  endpoints: RecordedStack['endpoints'] & { hdfsExternal: boolean; livyExternal: boolean };
}

function stateFile(paths: TfosPaths): string {
  return path.join(paths.stack, 'state.json');
}

function readState(paths: TfosPaths): StackState | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile(paths), 'utf8')) as StackState;
  } catch {
    return undefined;
  }
}

function writeState(paths: TfosPaths, state: StackState): void {
  const file = stateFile(paths);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
  fs.renameSync(`${file}.tmp`, file);
}

async function probe(state: StackState): Promise<StackStatus> {
  const e = state.endpoints;
  const [master, hdfsOk, livyOk, yarn] = await Promise.all([
    masterState(e.sparkUi),
    hdfsHealthy(e.webhdfs),
    livyHealthy(e.livy),
    state.yarn ? yarnStatus(state.yarn.resourceManager, state.yarn.nodeManagers) : undefined,
  ]);
  const workers = aliveWorkers(master);
  return {
    spark: { master: e.sparkMaster, ui: e.sparkUi, workers, healthy: master?.status === 'ALIVE' && workers >= state.workers },
    hdfs: {
      defaultFS: e.defaultFS,
      webhdfs: e.webhdfs,
      healthy: hdfsOk,
      configDir: e.hadoopConfDir,
      external: e.hdfsExternal || undefined,
    },
    livy: { url: e.livy, healthy: livyOk, sessions: e.livySessions ?? e.livyExternal, external: e.livyExternal || undefined },
    ...(state.network
      ? {
          hosts: state.hosts,
          network: { id: state.network.id, subnet: state.network.subnet, gateway: state.network.gateway, bridge: state.network.bridge },
        }
      : {}),
    ...(yarn ? { yarn } : {}),
  };
}

export function allHealthy(s: StackStatus): boolean {
  return s.spark.healthy && s.hdfs.healthy && s.livy.healthy && (s.yarn?.healthy ?? true);
}

/** The running stack's status, or undefined when no stack was started. */
export async function stackStatus(paths: TfosPaths = tfosPaths()): Promise<StackStatus | undefined> {
  const state = readState(paths);
  return state && !isStale(state) ? probe(state) : undefined;
}

/**
 * A state file that names nothing running: written under another boot (a rebooted machine, or a
 * copy of this disk such as a CI checkout with a warm cache), or every process gone with no network
 * to remove. Such a stack is not running, rather than running and broken.
 */
function isStale(state: StackState): boolean {
  if (state.bootId !== undefined && state.bootId !== bootId()) return true;
  return !state.network && !state.services.some((s) => recordedStackProcessAlive(state, s));
}

/** Serialises `up`/`down` between processes (two test runs, a test run and a user). */
async function withLock<T>(paths: TfosPaths, fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(paths.stack, { recursive: true });
  const lock = path.join(paths.stack, 'lock');
  const deadline = Date.now() + 600_000;
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch {
      const holder = Number(fs.readFileSync(lock, 'utf8') || 0);
      if (!holder || !isAlive(holder)) {
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`stack lock ${lock} held by pid ${holder} for 10 minutes`);
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/**
 * Starts the stack, or reuses a running healthy one. Returns only once every service is healthy;
 * on any failure, stops whatever it started (no half stack) and rethrows.
 */
export async function stackUp(opts: StackUpOptions = {}): Promise<StackStatus & { reused: boolean }> {
  const env = opts.env ?? process.env;
  const paths = tfosPaths(env);
  const log = opts.log ?? silentLogger;
  return withLock(paths, async () => {
    const recorded = readState(paths);
    const stale = recorded !== undefined && isStale(recorded);
    if (stale) {
      const otherBoot = recorded.bootId !== undefined && recorded.bootId !== bootId();
      log(
        `the recorded stack in ${paths.home} is no longer running (${otherBoot ? 'machine rebooted or disk copied' : 'every process gone'}): starting afresh`,
      );
      fs.rmSync(stateFile(paths), { force: true });
    }
    const previous = stale ? undefined : recorded;
    if (previous) {
      const shape = (hosts: number | undefined, yarn: boolean) => `${hosts ? `${hosts} hosts` : 'loopback'}${yarn ? ' with YARN' : ''}`;
      const running = shape(previous.network?.hosts.length, Boolean(previous.yarn));
      const wanted = shape(opts.hosts, Boolean(opts.yarn));
      if (running !== wanted)
        throw new Error(`a ${running} stack is already running in ${paths.home}; stop it first (tfos stack down) to start a ${wanted} one`);
      const status = await probe(previous);
      if (allHealthy(status) && previous.services.every((s) => recordedStackProcessAlive(previous, s))) {
        log('stack already running: reusing it');
        return { ...status, reused: true };
      }
      log('a previous stack is partly down: stopping what is left and starting afresh');
      await stopAll(previous, log);
      fs.rmSync(stateFile(paths), { force: true });
    }

    const ports = { ...DEFAULT_PORTS, ...opts.ports };
    const hostCount = opts.hosts;
    if (hostCount !== undefined && (!Number.isInteger(hostCount) || hostCount < 3)) {
      throw new Error(`--hosts must be an integer >= 3 (one host for the master, NameNode and Livy, one per worker), got ${hostCount}`);
    }
    const workers = hostCount ? hostCount - 1 : (opts.workers ?? 2);
    // A multi-host stack is self-contained: a user's HDFS or Livy is not on its network.
    const userLivy = hostCount ? undefined : env.TFOS_LIVY_URL?.trim();
    const userHdfs = !hostCount && env.HADOOP_CONF_DIR?.trim() ? externalHdfs(env.HADOOP_CONF_DIR.trim()) : undefined;

    const [spark, hadoop, livy, yarnInstall] = await Promise.all([
      provisionSpark(paths, log, env),
      userHdfs ? undefined : provisionHadoop(paths, log),
      userLivy ? undefined : provisionLivy(paths, log),
      opts.yarn ? provisionYarn(paths, log) : undefined,
    ]);

    const state: StackState = {
      version: 1,
      startedAt: new Date().toISOString(),
      bootId: bootId(),
      workers,
      ports,
      services: [],
      endpoints: {
        sparkMaster: '',
        sparkUi: '',
        defaultFS: '',
        webhdfs: '',
        hdfsExternal: Boolean(userHdfs),
        livy: '',
        livyExternal: Boolean(userLivy),
      },
    };
    const fail = async (err: unknown): Promise<never> => {
      await stopAll(state, log);
      fs.rmSync(stateFile(paths), { force: true });
      throw err;
    };
    // Where each service runs: all on loopback, or spread over the network hosts.
    let head: Placement | undefined;
    let workerHosts: Placement[] | undefined;
    if (hostCount) {
      const plan = await planNetwork(paths.stack, hostCount);
      // Names taken by someone else are refused before the plan is recorded: `down` would remove them.
      const taken = await leftovers(plan);
      if (taken.length) {
        throw new Error(
          `cannot build the stack network: ${taken.join(', ')} already exist (left by an earlier stack of ${paths.home}? remove them with ip netns del / ip link del)`,
        );
      }
      state.network = plan;
      const roles = (head: boolean) =>
        head
          ? ['spark-master', 'namenode', 'livy', ...(opts.yarn ? ['resourcemanager'] : [])]
          : ['spark-worker', 'datanode', ...(opts.yarn ? ['nodemanager'] : [])];
      state.hosts = plan.hosts.map((h, i) => ({ name: h.name, address: h.address, roles: roles(i === 0) }));
      writeState(paths, state);
      log(`creating ${hostCount} network hosts on ${plan.subnet} (bridge ${plan.bridge}, this machine ${plan.gateway})`);
      await createNetwork(plan).catch(fail);
      [head, ...workerHosts] = plan.hosts;
    }

    const specs: ServiceSpec[] = [];
    const hdfs =
      userHdfs ??
      hdfsServices(hadoop!, {
        stackDir: paths.stack,
        nameNodeRpcPort: ports.nameNodeRpc,
        nameNodeHttpPort: ports.nameNodeHttp,
        nameNode: head,
        dataNodes: workerHosts,
      });
    specs.push(...hdfs.services);
    const sparkStack = sparkServices(spark, {
      stackDir: paths.stack,
      masterPort: ports.sparkMaster,
      masterUiPort: ports.sparkMasterUi,
      workers,
      workerCores: opts.workerCores ?? (hostCount ? 4 : 2),
      workerMemory: opts.workerMemory ?? '4g',
      workerUiPortBase: ports.sparkWorkerUiBase,
      master: head,
      workerHosts,
    });
    specs.push(...sparkStack.services);
    const yarnStack = yarnInstall
      ? yarnServices(yarnInstall, { stackDir: paths.stack, hdfsConfDir: hdfs.configDir, resourceManager: head, nodeManagers: workerHosts })
      : undefined;
    if (yarnStack) {
      specs.push(...yarnStack.services);
      // Every host of this stack shares this machine's file system: containers take Spark's jars
      // from where they are instead of a 300 MB upload per application.
      state.yarn = {
        resourceManager: yarnStack.resourceManager,
        nodeManagers: yarnStack.nodeManagers,
        sparkConf: { 'spark.yarn.jars': `local:${path.join(spark.sparkHome, 'jars')}/*` },
      };
    }
    const livyStack = livy
      ? livyService(livy, {
          stackDir: paths.stack,
          port: ports.livy,
          // With --yarn, Livy submits to YARN (client deploy mode, the driver beside Livy).
          sparkMaster: yarnStack ? 'yarn' : sparkStack.masterUrl,
          spark,
          hadoopConfDir: yarnStack?.confDir ?? hdfs.configDir,
          sparkDefaults: state.yarn?.sparkConf,
          at: head,
        })
      : undefined;
    if (livyStack) specs.push(livyStack.service);

    await assertPortsFree(specs).catch(fail);
    state.endpoints = {
      sparkMaster: sparkStack.masterUrl,
      sparkUi: sparkStack.ui,
      defaultFS: hdfs.defaultFS,
      webhdfs: hdfs.webhdfs,
      // With YARN, the client configuration that names both HDFS and the ResourceManager.
      hadoopConfDir: yarnStack?.confDir ?? hdfs.configDir,
      hdfsExternal: Boolean(userHdfs),
      livy: livyStack?.url ?? userLivy!,
      livyExternal: !livyStack,
      livySessions: livy ? Boolean(livy.replJarsDir) : true,
    };
    // Each service starts as soon as those it needs are healthy (workers after the master,
    // DataNodes after the NameNode): independent JVMs start side by side.
    const ready = new Map<string, Promise<void>>();
    const start = async (spec: ServiceSpec): Promise<void> => {
      await Promise.all((spec.startsAfter ?? []).map((name) => ready.get(name)));
      const started = Date.now();
      log(`starting ${spec.name}${spec.netns ? ` in ${spec.netns}` : ''}`);
      state.services.push(await startService(spec, paths.logs));
      // Recorded after every service, so a crash of this process still lets `down` find them.
      writeState(paths, state);
      log(`${spec.name} healthy in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    };
    for (const spec of specs) ready.set(spec.name, start(spec));
    const outcomes = await Promise.allSettled(ready.values());
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) await fail(failed.reason);
    const status = await probe(state);
    if (!allHealthy(status)) {
      await stopAll(state, log);
      fs.rmSync(stateFile(paths), { force: true });
      throw new Error(`stack started but is not healthy: ${JSON.stringify(status)}`);
    }
    return { ...status, reused: false };
  });
}

async function stopAll(state: StackState, log: Logger): Promise<void> {
  // Reverse start order: Livy and workers first, HDFS last.
  for (const svc of [...state.services].reverse()) {
    log(`stopping ${svc.name} (pid ${svc.pid})`);
    await stopService(svc);
  }
  if (state.network) {
    log(`removing the stack network ${state.network.subnet} (namespaces, links, bridge ${state.network.bridge})`);
    await destroyNetwork(state.network);
  }
}

/** Stops every service of the stack; a no-op when none is running. */
export async function stackDown(opts: { log?: Logger; env?: NodeJS.ProcessEnv } = {}): Promise<boolean> {
  const paths = tfosPaths(opts.env ?? process.env);
  const log = opts.log ?? silentLogger;
  return withLock(paths, async () => {
    const state = readState(paths);
    if (!state) return false;
    const stale = isStale(state);
    if (!stale) await stopAll(state, log);
    fs.rmSync(stateFile(paths), { force: true });
    return !stale;
  });
}

/**
 * Cuts (up=false) or restores the network link of one host of a running multi-host stack, as a
 * pulled cable would: the host's processes keep running but nothing reaches them.
 */
export async function setStackHostLink(host: string, up: boolean, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const state = readState(tfosPaths(env));
  if (!state?.network) throw new Error('no multi-host stack is running (start one with: tfos stack up --hosts 3)');
  const h = state.network.hosts.find((x) => x.name === host || x.address === host);
  if (!h)
    throw new Error(`the stack has no host '${host}' (hosts: ${state.network.hosts.map((x) => `${x.name} ${x.address}`).join(', ')})`);
  await setHostLink(h, up);
}
