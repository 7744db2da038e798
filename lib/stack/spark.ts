/**
 * Spark for the project: provisioning (the PyPI pyspark distribution is a complete Spark runtime)
 * and the standalone master + workers of `tfos stack`. Finding an installed Spark is
 * lib/platform/spark.ts (the runtime's read-only side).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../platform/exec';
import { Logger } from '../platform/log';
import { TfosPaths } from '../platform/paths';
import { resolveSpark, SPARK_ENV_MARKER, SparkInstall, sparkEnv, sparkPythonEnv, sparkPythonEnvComplete } from '../platform/spark';
import { LOOPBACK, Placement, ServiceSpec } from './service';

/**
 * Creates (once) the Python environment with pyspark + pyarrow, or with only the libraries when
 * the user's SPARK_HOME is honoured; then returns what resolveSpark finds.
 */
export async function provisionSpark(paths: TfosPaths, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<SparkInstall> {
  const { pythonEnv, python, packages } = sparkPythonEnv(paths, env);
  const wanted = packages.join(' ');
  if (!sparkPythonEnvComplete(pythonEnv, packages)) {
    log(`provisioning Python environment for Spark executors (${wanted}) in ${pythonEnv}`);
    const started = Date.now();
    // venvs are not relocatable, so it is built in place; the marker is written last, and an
    // environment without it (an interrupted setup) is rebuilt from scratch.
    fs.rmSync(pythonEnv, { recursive: true, force: true });
    await run(systemPython(env), ['-m', 'venv', pythonEnv], { timeoutMs: 120_000 });
    try {
      await run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', ...packages], {
        timeoutMs: 900_000,
        env: { ...env, PIP_NO_INPUT: '1' },
      });
    } catch (err) {
      fs.rmSync(pythonEnv, { recursive: true, force: true });
      throw err;
    }
    fs.writeFileSync(path.join(pythonEnv, SPARK_ENV_MARKER), wanted + '\n');
    log(`Python environment ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  return resolveSpark(env, paths);
}

function systemPython(env: NodeJS.ProcessEnv): string {
  return env.TFOS_PYTHON?.trim() || 'python3';
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

/**
 * The workers delete the folders of applications that ended more than two hours ago (checked every
 * 15 minutes). Each application leaves its executors' logs and a copy of its files there (about
 * 20 MB), and a stack that stays up across many runs filled gigabytes in a day. Two hours keep a
 * recent run's executor logs to read; a user's own SPARK_WORKER_OPTS come after and win.
 */
export const WORKER_CLEANUP_OPTIONS =
  '-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=900 -Dspark.worker.cleanup.appDataTtl=7200';

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
    SPARK_WORKER_OPTS: [WORKER_CLEANUP_OPTIONS, process.env.SPARK_WORKER_OPTS].filter(Boolean).join(' '),
  });
  const services: ServiceSpec[] = [
    {
      name: 'spark-master',
      command: sparkClass,
      args: [
        'org.apache.spark.deploy.master.Master',
        '--host',
        at.address,
        '--port',
        String(opts.masterPort),
        '--webui-port',
        String(opts.masterUiPort),
      ],
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
        '--host',
        host.address,
        '--cores',
        String(opts.workerCores),
        '--memory',
        opts.workerMemory,
        '--webui-port',
        String(uiPort),
        '--work-dir',
        workDir,
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
