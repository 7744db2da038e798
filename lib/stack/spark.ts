/**
 * Spark for the project: provisioning (the PyPI pyspark distribution is a complete Spark runtime)
 * and the standalone master + workers of `tfos stack`.
 *
 * Executors run our Python task code (spark-jobs/) and need pyarrow, so Spark always comes with a
 * Python virtual environment of its own; PYSPARK_PYTHON points at it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from './exec';
import { Logger } from './log';
import { java17Home, TfosPaths, VERSIONS } from './paths';
import { LOOPBACK, Placement, ServiceSpec } from './service';

export interface SparkInstall {
  sparkHome: string;
  /** Python of the virtual environment executors and the launcher use. */
  python: string;
  pythonEnv: string;
  /** 'provisioned' when SPARK_HOME is ours, 'existing' when the user's SPARK_HOME is honoured. */
  source: 'provisioned' | 'existing';
  javaHome: string;
}

const MARKER = '.tfos-complete';

function pythonPackages(withPyspark: boolean): string[] {
  const pkgs = [`pyarrow==${VERSIONS.pyarrow}`, `pandas==${VERSIONS.pandas}`, `numpy==${VERSIONS.numpy}`];
  return withPyspark ? [`pyspark==${VERSIONS.spark}`, ...pkgs] : pkgs;
}

function userSparkHome(env: NodeJS.ProcessEnv): string | undefined {
  const home = env.SPARK_HOME?.trim();
  if (!home) return undefined;
  if (!fs.existsSync(path.join(home, 'bin', 'spark-submit'))) {
    throw new Error(`SPARK_HOME=${home} has no bin/spark-submit; unset SPARK_HOME to let tfos provision Spark`);
  }
  return path.resolve(home);
}

/** Creates (once) the Python environment with pyspark + pyarrow; honours a user's SPARK_HOME. */
export async function provisionSpark(paths: TfosPaths, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<SparkInstall> {
  const existing = userSparkHome(env);
  const pythonEnv = existing ? `${paths.pythonEnv}-libs` : paths.pythonEnv;
  const python = path.join(pythonEnv, 'bin', 'python');
  const marker = path.join(pythonEnv, MARKER);
  const wanted = pythonPackages(!existing).join(' ');
  const done = fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === wanted;
  if (!done) {
    log(`provisioning Python environment for Spark executors (${wanted}) in ${pythonEnv}`);
    const started = Date.now();
    // venvs are not relocatable, so it is built in place; the marker is written last, and an
    // environment without it (an interrupted setup) is rebuilt from scratch.
    fs.rmSync(pythonEnv, { recursive: true, force: true });
    await run(systemPython(env), ['-m', 'venv', pythonEnv], { timeoutMs: 120_000 });
    try {
      await run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', ...pythonPackages(!existing)], {
        timeoutMs: 900_000,
        env: { ...env, PIP_NO_INPUT: '1' },
      });
    } catch (err) {
      fs.rmSync(pythonEnv, { recursive: true, force: true });
      throw err;
    }
    fs.writeFileSync(marker, wanted + '\n');
    log(`Python environment ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  const sparkHome = existing ?? (await pysparkHome(python));
  return { sparkHome, python, pythonEnv, source: existing ? 'existing' : 'provisioned', javaHome: java17Home(env) };
}

function systemPython(env: NodeJS.ProcessEnv): string {
  return env.TFOS_PYTHON?.trim() || 'python3';
}

async function pysparkHome(python: string): Promise<string> {
  const res = await run(python, ['-c', 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'], { timeoutMs: 60_000 });
  return res.stdout.trim();
}

/**
 * Environment for any Spark JVM or spark-submit we start. `localIp` is the address Spark binds and
 * advertises (SPARK_LOCAL_IP): loopback for the local stack, a host's own address on a multi-host one.
 */
export function sparkEnv(install: SparkInstall, base: NodeJS.ProcessEnv = process.env, localIp = '127.0.0.1'): NodeJS.ProcessEnv {
  return {
    ...base,
    JAVA_HOME: install.javaHome,
    SPARK_HOME: install.sparkHome,
    // Needed when worker JVMs launch executors outside spark-submit (standalone, local-cluster).
    SPARK_SCALA_VERSION: VERSIONS.scala,
    PYSPARK_PYTHON: install.python,
    PYSPARK_DRIVER_PYTHON: install.python,
    SPARK_LOCAL_IP: localIp,
    PATH: `${path.join(install.javaHome, 'bin')}${path.delimiter}${base.PATH ?? ''}`,
  };
}

export interface SparkStackOptions {
  stackDir: string;
  masterPort: number;
  masterUiPort: number;
  workers: number;
  /** Cores each worker offers; executors take one each (spark.executor.cores=1 in our jobs). */
  workerCores: number;
  workerMemory: string;
  /** First worker web UI port; worker i uses base + i. */
  workerUiPortBase: number;
  /** Where the master runs (default: loopback here). */
  master?: Placement;
  /** Where worker i runs (default: every worker beside the master). */
  workerHosts?: Placement[];
}

export interface SparkStack {
  masterUrl: string;
  ui: string;
  services: ServiceSpec[];
}

export interface MasterState {
  status: string;
  workers: Array<{ id: string; host: string; state: string; cores: number; coresused: number }>;
  aliveworkers?: number;
}

/** Reads the standalone master's JSON status page, or undefined when it does not answer. */
export async function masterState(ui: string): Promise<MasterState | undefined> {
  try {
    const res = await fetch(`${ui}/json/`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) return undefined;
    return (await res.json()) as MasterState;
  } catch {
    return undefined;
  }
}

export function aliveWorkers(state: MasterState | undefined): number {
  return state ? state.workers.filter((w) => w.state === 'ALIVE').length : 0;
}

export function sparkServices(install: SparkInstall, opts: SparkStackOptions): SparkStack {
  const at = opts.master ?? LOOPBACK;
  const masterUrl = `spark://${at.address}:${opts.masterPort}`;
  const ui = `http://${at.address}:${opts.masterUiPort}`;
  const sparkClass = path.join(install.sparkHome, 'bin', 'spark-class');
  const workDir = path.join(opts.stackDir, 'spark', 'work');
  fs.mkdirSync(workDir, { recursive: true });
  const envAt = (p: Placement) => ({
    ...sparkEnv(install, process.env, p.address),
    SPARK_LOG_DIR: path.join(opts.stackDir, 'logs'),
    SPARK_WORKER_DIR: workDir,
    // Without this the master's and workers' UIs pick the next free port silently.
    SPARK_MASTER_OPTS: '-Dspark.ui.reverseProxy=false',
  });
  const services: ServiceSpec[] = [
    {
      name: 'spark-master',
      command: sparkClass,
      args: ['org.apache.spark.deploy.master.Master', '--host', at.address, '--port', String(opts.masterPort), '--webui-port', String(opts.masterUiPort)],
      env: envAt(at),
      cwd: opts.stackDir,
      netns: at.netns,
      ports: [opts.masterPort, opts.masterUiPort],
      healthy: async () => (await masterState(ui))?.status === 'ALIVE',
      startTimeoutMs: 120_000,
    },
  ];
  const placed = new Set((opts.workerHosts ?? []).map((h) => h.address)).size === opts.workers;
  for (let i = 0; i < opts.workers; i++) {
    const uiPort = opts.workerUiPortBase + i;
    const host = opts.workerHosts?.[i] ?? at;
    services.push({
      name: `spark-worker-${i + 1}`,
      command: sparkClass,
      args: [
        'org.apache.spark.deploy.worker.Worker',
        '--host', host.address,
        '--cores', String(opts.workerCores),
        '--memory', opts.workerMemory,
        '--webui-port', String(uiPort),
        '--work-dir', workDir,
        masterUrl,
      ],
      env: envAt(host),
      cwd: opts.stackDir,
      netns: host.netns,
      ports: [uiPort],
      // A worker is healthy once the master lists it ALIVE: by its own address when workers have
      // hosts of their own (they start side by side); on one host they start one after the other
      // and the master must count i + 1.
      healthy: placed
        ? async () => Boolean((await masterState(ui))?.workers.some((w) => w.host === host.address && w.state === 'ALIVE'))
        : async () => aliveWorkers(await masterState(ui)) >= i + 1,
      startTimeoutMs: 120_000,
      startsAfter: ['spark-master', ...(!placed && i > 0 ? [`spark-worker-${i}`] : [])],
    });
  }
  return { masterUrl, ui, services };
}
