/**
 * `tfos submit-command <module> [tfos run options] -- <args>`: prints the spark-submit line that
 * makes the same run without a Node process of the user's — the bundled launcher becomes the
 * Spark driver program and starts the Node driver side itself (spark-jobs/tfos_launcher.py,
 * routes/attached.ts). One shell-quoted line; running it with bash is the run, and a YARN or
 * Kubernetes user adapts its --master and --conf.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { clusterEnvironment } from '../platform/cluster-env';
import { JAVA17_OPENS } from '../platform/java';
import { resolveSpark } from '../platform/spark';
import { LAUNCHER_PATH } from '../driver/routes/spark-submit';
import { parseRunArgs } from './run-command';

export const SUBMIT_USAGE = `tfos submit-command <module> [--deploy-mode client|cluster] [options of tfos run] -- <args>   print the equivalent spark-submit line`;

/** Options that choose or configure the route: they become spark-submit's own. */
const ROUTE_FLAGS = new Set(['--via', '--master', '--livy', '--livy-mode', '--conf', '--archive', '--deploy-mode']);
const WITH_VALUE = ROUTE_FLAGS;

/**
 * Spark's own entry point for Python applications. On a standalone master spark-submit refuses a
 * `.py` application in cluster deploy mode, but not a JVM one: naming PythonRunner as the main
 * class makes the worker that hosts the driver run the launcher exactly as client mode does.
 */
export const PYTHON_RUNNER = 'org.apache.spark.deploy.PythonRunner';

/**
 * In standalone cluster mode spark-submit's client exits 0 whatever state the driver ends in
 * (FINISHED, FAILED, KILLED: Spark's deploy Client). Its last line names that state, so the
 * printed line passes the client's log through and exits non-zero unless the driver FINISHED.
 */
export const STANDALONE_CLUSTER_STATUS = `2>&1 | awk '{ print; fflush() } / is FINISHED, exiting spark-submit JVM/ { ok = 1 } END { exit !ok }'`;

/** POSIX shell quoting: plain words stay as they are. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_/.:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface SubmitLine {
  /** Environment assignments put before the command (JAVA_HOME, HADOOP_CONF_DIR). */
  env: Record<string, string>;
  argv: string[];
  /** Shell text after the command (standalone cluster mode: the driver's final state as exit status). */
  statusFilter?: string;
}

/** The line as printed: one line for bash. */
export function formatSubmitLine(line: SubmitLine): string {
  const words = [...Object.entries(line.env).map(([k, v]) => `${k}=${shellQuote(v)}`), ...line.argv.map(shellQuote)];
  return line.statusFilter ? `${words.join(' ')} ${line.statusFilter}` : words.join(' ');
}

/**
 * A jar to stand as the primary resource of a standalone cluster-mode submission: only its path
 * matters (the worker copies it beside the driver; PythonRunner is on Spark's own classpath), so
 * Spark's smallest, spark-tags, from the same SPARK_HOME the workers run.
 */
export function carrierJar(sparkHome: string): string {
  const jars = path.join(sparkHome, 'jars');
  let names: string[] = [];
  try {
    names = fs.readdirSync(jars);
  } catch {
    /* reported below */
  }
  const tags = names.find((n) => /^spark-tags_.*\.jar$/.test(n));
  if (!tags) throw new Error(`no spark-tags jar in ${jars} (cluster deploy mode needs one of Spark's jars as the application)`);
  return path.join(jars, tags);
}

export async function submitLine(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<SubmitLine> {
  // Refuse what `tfos run` would refuse, with the same messages (--deploy-mode is ours alone).
  const parsed = await parseRunArgs(withoutDeployMode(argv), env);
  const via = parsed.options.via;
  if (via && 'livy' in via)
    throw new Error('tfos submit-command prints a spark-submit line; --via livy submits through Livy instead (use tfos run)');
  const dash = argv.indexOf('--');
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const userArgs = dash >= 0 ? argv.slice(dash) : [];
  const { values } = parseArgs({
    args: own,
    allowPositionals: true,
    strict: false,
    options: {
      'deploy-mode': { type: 'string' },
      master: { type: 'string' },
      conf: { type: 'string', multiple: true },
      archive: { type: 'string' },
      'cluster-size': { type: 'string' },
      'num-ps': { type: 'string' },
    },
  });
  const found = clusterEnvironment(env);
  const master =
    (values.master as string | undefined) ??
    (via && 'local' in via ? undefined : found.sparkMaster) ??
    `local[${parsed.options.numExecutors + (parsed.options.inputMode === 'spark' ? parsed.options.numExecutors : 0)}]`;
  const deployMode = (values['deploy-mode'] as string | undefined) ?? 'client';
  if (deployMode !== 'client' && deployMode !== 'cluster') throw new Error(`--deploy-mode must be client or cluster, got '${deployMode}'`);
  const cluster = deployMode === 'cluster';
  if (cluster && master.startsWith('local')) {
    throw new Error(`--deploy-mode cluster needs a cluster to host the driver (a spark:// or yarn master), not ${master}`);
  }
  const standaloneCluster = cluster && master.startsWith('spark://');
  const spark = resolveSpark(env);
  const out: SubmitLine = {
    env: { JAVA_HOME: spark.javaHome },
    argv: [path.join(spark.sparkHome, 'bin', 'spark-submit'), '--master', master],
  };
  if (cluster) out.argv.push('--deploy-mode', 'cluster');
  if (found.hdfs && !master.startsWith('local')) out.env.HADOOP_CONF_DIR = found.hdfs.configDir;
  // A cluster on loopback: Spark's driver must not pick another interface of this machine.
  if (/^local|\/\/(127\.0\.0\.1|localhost)[:/]/.test(master)) out.env.SPARK_LOCAL_IP = '127.0.0.1';
  // Executors and the launcher need the Python with pyarrow that `tfos setup` provisioned.
  out.argv.push('--conf', `spark.pyspark.python=${spark.python}`);
  const userConf = (values.conf as string[] | undefined) ?? [];
  // As tfos run does on a standalone master: one one-core executor per task slot, not every free core.
  if (master.startsWith('spark://') && !userConf.some((kv) => kv.startsWith('spark.cores.max='))) {
    const workers = parsed.options.numExecutors - (parsed.options.numPs ?? 0);
    const slots = parsed.options.numExecutors + (parsed.options.inputMode === 'spark' ? workers : 0);
    out.argv.push('--conf', `spark.cores.max=${slots}`);
  }
  if (standaloneCluster) {
    // The client waits for the driver's end, to report it; the worker starts the driver's JVM
    // without the flags spark-submit gives a client-mode driver on Java 17.
    out.argv.push('--conf', 'spark.standalone.submit.waitAppCompletion=true');
    const key = 'spark.driver.extraJavaOptions=';
    const theirs = userConf.find((kv) => kv.startsWith(key))?.slice(key.length);
    out.argv.push('--conf', `${key}${[...driverOpens(), ...(theirs ? [theirs] : [])].join(' ')}`);
  }
  for (const kv of userConf) if (!(standaloneCluster && kv.startsWith('spark.driver.extraJavaOptions='))) out.argv.push('--conf', kv);
  if (values.archive) out.argv.push('--archives', `${values.archive}#tfos-app`);
  if (standaloneCluster) {
    // PythonRunner's arguments: the Python file, its extra Python path (none), then the file's own.
    out.argv.push('--class', PYTHON_RUNNER, carrierJar(spark.sparkHome), LAUNCHER_PATH, '');
    out.statusFilter = STANDALONE_CLUSTER_STATUS;
  } else {
    out.argv.push(LAUNCHER_PATH);
  }
  out.argv.push(path.resolve(parsed.options.module));
  // Everything else passes through to the Node driver side unchanged.
  for (let i = 0; i < own.length; i++) {
    const a = own[i];
    const flag = a.split('=')[0];
    if (a === parsed.options.module && !a.startsWith('-')) continue;
    if (ROUTE_FLAGS.has(flag)) {
      if (WITH_VALUE.has(flag) && !a.includes('=')) i++;
      continue;
    }
    out.argv.push(a);
  }
  out.argv.push(...userArgs);
  return out;
}

/** The Java 17 module flags as JVM options of one line (ignored by an older JVM). */
function driverOpens(): string[] {
  const flags = ['-XX:+IgnoreUnrecognizedVMOptions'];
  for (let i = 0; i < JAVA17_OPENS.length; i += 2) flags.push(`${JAVA17_OPENS[i]}=${JAVA17_OPENS[i + 1]}`);
  return flags;
}

/** argv before `--` without --deploy-mode and its value. */
function withoutDeployMode(argv: string[]): string[] {
  const dash = argv.indexOf('--');
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const kept: string[] = [];
  for (let i = 0; i < own.length; i++) {
    if (own[i] === '--deploy-mode') i++;
    else if (!own[i].startsWith('--deploy-mode=')) kept.push(own[i]);
  }
  return dash >= 0 ? [...kept, ...argv.slice(dash)] : kept;
}

export async function submitCommand(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '-h' || argv[0] === '--help') {
    console.log(`usage: ${SUBMIT_USAGE}`);
    return argv.length === 0 ? 2 : 0;
  }
  console.log(formatSubmitLine(await submitLine(argv)));
  return 0;
}
