/**
 * `tfos submit-command <module> [tfos run options] -- <args>`: prints the spark-submit line that
 * makes the same run without a Node process of the user's — the bundled launcher becomes the
 * Spark driver program and starts the Node driver side itself (spark-jobs/tfos_launcher.py,
 * routes/attached.ts). One shell-quoted line; running it with bash is the run, and a YARN or
 * Kubernetes user adapts its --master and --conf.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { clusterEnvironment } from '../platform/cluster-env';
import { resolveSpark } from '../platform/spark';
import { LAUNCHER_PATH } from '../driver/routes/spark-submit';
import { parseRunArgs } from './run-command';

export const SUBMIT_USAGE = `tfos submit-command <module> [options of tfos run] -- <args>   print the equivalent spark-submit line`;

/** Options of `tfos run` that choose or configure the route: they become spark-submit's own. */
const ROUTE_FLAGS = new Set(['--via', '--master', '--livy', '--livy-mode', '--conf', '--archive']);
const WITH_VALUE = new Set(['--via', '--master', '--livy', '--livy-mode', '--conf', '--archive']);

/** POSIX shell quoting: plain words stay as they are. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_/.:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface SubmitLine {
  /** Environment assignments put before the command (JAVA_HOME, HADOOP_CONF_DIR). */
  env: Record<string, string>;
  argv: string[];
}

export async function submitLine(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<SubmitLine> {
  // Refuse what `tfos run` would refuse, with the same messages.
  const parsed = await parseRunArgs(argv, env);
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
  const spark = resolveSpark(env);
  const out: SubmitLine = {
    env: { JAVA_HOME: spark.javaHome },
    argv: [path.join(spark.sparkHome, 'bin', 'spark-submit'), '--master', master],
  };
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
  for (const kv of userConf) out.argv.push('--conf', kv);
  if (values.archive) out.argv.push('--archives', `${values.archive}#tfos-app`);
  out.argv.push(LAUNCHER_PATH, path.resolve(parsed.options.module));
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

export async function submitCommand(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '-h' || argv[0] === '--help') {
    console.log(`usage: ${SUBMIT_USAGE}`);
    return argv.length === 0 ? 2 : 0;
  }
  const line = await submitLine(argv);
  console.log([...Object.entries(line.env).map(([k, v]) => `${k}=${shellQuote(v)}`), ...line.argv.map(shellQuote)].join(' '));
  return 0;
}
