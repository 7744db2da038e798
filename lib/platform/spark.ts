/**
 * Finding the Spark that `tfos setup` provisioned (or the user's SPARK_HOME), read-only.
 *
 * Spark comes from PyPI's pyspark inside a Python virtual environment of our own, because
 * executors run our Python task code (spark-jobs/) and need pyarrow; PYSPARK_PYTHON points at it.
 * With a user's SPARK_HOME, the environment holds only the Python libraries ("-libs").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { java17Home } from './java';
import { NotProvisionedError } from './not-provisioned';
import { TfosPaths, tfosPaths } from './paths';
import { VERSIONS } from './versions';

export interface SparkInstall {
  sparkHome: string;
  /** Python of the virtual environment executors and the launcher use. */
  python: string;
  pythonEnv: string;
  /** 'provisioned' when SPARK_HOME is ours, 'existing' when the user's SPARK_HOME is honoured. */
  source: 'provisioned' | 'existing';
  javaHome: string;
}

/** Written last by the installer, holding the package list: an environment without it is incomplete. */
export const SPARK_ENV_MARKER = '.tfos-complete';

/** What the Python environment must hold (pyspark only when Spark itself comes from it). */
export function sparkPythonPackages(withPyspark: boolean): string[] {
  const pkgs = [`pyarrow==${VERSIONS.pyarrow}`, `pandas==${VERSIONS.pandas}`, `numpy==${VERSIONS.numpy}`];
  return withPyspark ? [`pyspark==${VERSIONS.spark}`, ...pkgs] : pkgs;
}

/** The user's SPARK_HOME (checked), or undefined. */
export function userSparkHome(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const home = env.SPARK_HOME?.trim();
  if (!home) return undefined;
  if (!fs.existsSync(path.join(home, 'bin', 'spark-submit'))) {
    throw new Error(`SPARK_HOME=${home} has no bin/spark-submit; unset SPARK_HOME to let tfos provision Spark`);
  }
  return path.resolve(home);
}

/** Where the Python environment for Spark lives and what it must contain. */
export function sparkPythonEnv(
  paths: TfosPaths,
  env: NodeJS.ProcessEnv = process.env,
): { pythonEnv: string; python: string; packages: string[] } {
  const existing = userSparkHome(env);
  const pythonEnv = existing ? `${paths.pythonEnv}-libs` : paths.pythonEnv;
  return { pythonEnv, python: path.join(pythonEnv, 'bin', 'python'), packages: sparkPythonPackages(!existing) };
}

/** True when the environment is complete and holds exactly the wanted packages. */
export function sparkPythonEnvComplete(pythonEnv: string, packages: string[]): boolean {
  try {
    return fs.readFileSync(path.join(pythonEnv, SPARK_ENV_MARKER), 'utf8').trim() === packages.join(' ');
  } catch {
    return false;
  }
}

/** pyspark's package folder (a complete SPARK_HOME) inside a virtual environment. */
function pysparkHome(pythonEnv: string): string | undefined {
  for (const lib of ['lib', 'lib64']) {
    let entries: string[];
    try {
      entries = fs.readdirSync(path.join(pythonEnv, lib));
    } catch {
      continue;
    }
    for (const py of entries.filter((e) => /^python3/.test(e)).sort()) {
      const home = path.join(pythonEnv, lib, py, 'site-packages', 'pyspark');
      if (fs.existsSync(path.join(home, 'bin', 'spark-submit'))) return home;
    }
  }
  return undefined;
}

/**
 * The Spark to run on, without installing anything: the user's SPARK_HOME or ours, plus the
 * Python environment and Java 17. Throws NotProvisionedError ("run `tfos setup`") when missing.
 */
export function resolveSpark(env: NodeJS.ProcessEnv = process.env, paths: TfosPaths = tfosPaths(env)): SparkInstall {
  const existing = userSparkHome(env);
  const { pythonEnv, python, packages } = sparkPythonEnv(paths, env);
  if (!sparkPythonEnvComplete(pythonEnv, packages)) {
    throw new NotProvisionedError("Spark's Python environment", pythonEnv, `expected ${packages.join(' ')}`);
  }
  const sparkHome = existing ?? pysparkHome(pythonEnv);
  if (!sparkHome) throw new NotProvisionedError('Spark (pyspark)', pythonEnv, 'no pyspark/bin/spark-submit inside');
  return { sparkHome, python, pythonEnv, source: existing ? 'existing' : 'provisioned', javaHome: java17Home(env) };
}

/** Environment for any Spark JVM or spark-submit we start. */
/**
 * Environment for any Spark JVM or spark-submit we start. `localIp` is the address Spark binds and
 * advertises (SPARK_LOCAL_IP): loopback on one machine, this host's own address on a cluster.
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

/**
 * JVM flags that cut a Spark JVM's start-up CPU, which is most of a cluster's start-up on a small or
 * busy machine: the C1 compiler only (no C2 compiler thread competing for cores while thousands of
 * classes load; about 40% less CPU to a running SparkContext) and the serial collector (no parallel
 * GC threads). C1 code runs slower once hot, so routes give them only to JVMs that do no data work.
 */
export const QUICK_START_JVM_OPTIONS = '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC';

/**
 * Where `tfos setup` keeps Spark's classes as a JVM class-data archive (AppCDS, dumped from a
 * local-mode run): a JVM that maps it skips parsing and verifying them (about 30% less start-up
 * CPU). It belongs to this Spark and this Java; a JVM whose classpath does not match ignores it.
 */
export function sparkClassArchivePath(install: SparkInstall): string {
  return path.join(install.pythonEnv, 'spark-classes.jsa');
}

/** The archive when `tfos setup` made one (only for the Spark it provisioned), else undefined. */
export function sparkClassArchive(install: SparkInstall): string | undefined {
  if (install.source !== 'provisioned') return undefined;
  const file = sparkClassArchivePath(install);
  return fs.existsSync(file) ? file : undefined;
}
