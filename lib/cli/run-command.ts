/**
 * `tfos run <module> [options] -- <user args>`: TFCluster.run from the command line, with
 * progress on stderr and every trainer's output prefixed by its role (worker:1 | ...).
 */
import { parseArgs } from 'node:util';
import { InputMode } from '../protocol/input-mode';
import { ProgressEvent, LogLine, TFClusterHandle } from '../driver/cluster';
import { RouteOption, TFCluster, TFClusterRunOptions } from '../driver/tf-cluster';
import { clusterEnvironment } from '../platform/cluster-env';

export const RUN_USAGE = `tfos run <module> [--fn NAME] [--via local|spark-submit|livy] [--master URL] [--livy URL]
         [--livy-mode batch|session] [--cluster-size N] [--num-ps K] [--input-mode spark|tensorflow]
         [--reservation-timeout SEC] [--log-dir DIR] [--eval-node] [--no-chief] [--gpus N]
         [--conf key=value ...] [--env NAME=value ...] [--archive URI --project DIR [--bundled-node]]
         [--data PATH [--epochs E]] [--input-mode spark [--inference PATH --output PATH [--overwrite] [--result-schema DDL]]]
         [--quiet] -- <args for your function>`;

export interface ParsedRun {
  options: TFClusterRunOptions;
  quiet: boolean;
  /** InputMode.SPARK inference once the cluster is up (the run's --data is fed by TFCluster.run). */
  feed?: { inference?: string; output?: string; overwrite?: boolean; resultSchema?: string };
}

function positiveInt(name: string, v: string | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}

function keyValues(name: string, list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`--${name} expects key=value, got '${item}'`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** Parses argv (after "run"); picks the route: explicit --via, else SPARK_MASTER or the running stack, else embedded. */
export async function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<ParsedRun> {
  const dash = argv.indexOf('--');
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const userArgs = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values, positionals } = parseArgs({
    args: own,
    allowPositionals: true,
    options: {
      fn: { type: 'string' },
      via: { type: 'string' },
      master: { type: 'string' },
      livy: { type: 'string' },
      'livy-mode': { type: 'string' },
      'cluster-size': { type: 'string' },
      'num-ps': { type: 'string' },
      'input-mode': { type: 'string' },
      'reservation-timeout': { type: 'string' },
      'log-dir': { type: 'string' },
      'eval-node': { type: 'boolean' },
      'no-chief': { type: 'boolean' },
      gpus: { type: 'string' },
      conf: { type: 'string', multiple: true },
      env: { type: 'string', multiple: true },
      quiet: { type: 'boolean' },
      archive: { type: 'string' },
      project: { type: 'string' },
      'bundled-node': { type: 'boolean' },
      data: { type: 'string' },
      epochs: { type: 'string' },
      inference: { type: 'string' },
      output: { type: 'string' },
      overwrite: { type: 'boolean' },
      'result-schema': { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error(`tfos run needs exactly one module path (got ${positionals.length})\nusage: ${RUN_USAGE}`);
  const inputMode = values['input-mode'];
  if (inputMode !== undefined && inputMode !== InputMode.SPARK && inputMode !== InputMode.TENSORFLOW) {
    throw new Error(`--input-mode must be spark or tensorflow, got '${inputMode}'`);
  }
  const conf = keyValues('conf', values.conf);
  // No route flags: the Spark master of SPARK_MASTER or the running `tfos stack`, else an embedded
  // local Spark. Masters, Livy URLs and HDFS left out are found by TFCluster.run the same way.
  const via = values.via ?? (values.livy ? 'livy' : values.master || clusterEnvironment(env).sparkMaster ? 'spark-submit' : 'local');
  let route: RouteOption;
  switch (via) {
    case 'local':
      route = { local: { conf } };
      break;
    case 'spark-submit':
      route = { sparkSubmit: { master: values.master, conf } };
      break;
    case 'livy': {
      const mode = values['livy-mode'] ?? 'batch';
      if (mode !== 'batch' && mode !== 'session') throw new Error(`--livy-mode must be batch or session, got '${mode}'`);
      route = { livy: { url: values.livy, mode, conf } };
      break;
    }
    default:
      throw new Error(`--via must be local, spark-submit or livy, got '${via}'`);
  }
  if (values.epochs !== undefined && values.data === undefined) throw new Error('--epochs needs --data PATH (the dataset to pass over)');
  if (values.inference !== undefined && inputMode !== InputMode.SPARK) {
    throw new Error('--inference makes Spark feed the trainers: add --input-mode spark');
  }
  if (values.inference !== undefined && !values.output) throw new Error('--inference PATH needs --output PATH for the results');
  return {
    feed: values.inference !== undefined ? { inference: values.inference, output: values.output, overwrite: values.overwrite, resultSchema: values['result-schema'] } : undefined,
    quiet: Boolean(values.quiet),
    options: {
      module: positionals[0],
      fn: values.fn,
      args: userArgs,
      numExecutors: positiveInt('cluster-size', values['cluster-size'], 2),
      numPs: positiveInt('num-ps', values['num-ps'], 0, 0),
      inputMode: inputMode as InputMode | undefined,
      data: values.data,
      epochs: values.epochs === undefined ? undefined : positiveInt('epochs', values.epochs, 1),
      reservationTimeout: positiveInt('reservation-timeout', values['reservation-timeout'], 120),
      logDir: values['log-dir'],
      evalNode: values['eval-node'],
      masterNode: values['no-chief'] ? null : 'chief',
      gpusPerNode: positiveInt('gpus', values.gpus, 0, 0),
      env: keyValues('env', values.env),
      webhdfs: env.TFOS_WEBHDFS?.trim() || undefined,
      via: route,
      archive: values.archive ? { uri: values.archive, projectDir: values.project ?? '.', bundledNode: values['bundled-node'] } : undefined,
    },
  };
}

export async function runCommand(argv: string[]): Promise<number> {
  const { options, quiet, feed } = await parseRunArgs(argv);
  const say = (line: string) => {
    if (!quiet) process.stderr.write(`[tfos] ${line}\n`);
  };
  const onLog = (l: LogLine) => process.stdout.write(`${l.label.padEnd(10)}| ${l.line}\n`);
  say(`starting ${options.numExecutors} TF nodes (${options.numPs ?? 0} ps) for ${options.module}`);
  const started = Date.now();
  let handle: TFClusterHandle;
  try {
    handle = await TFCluster.run({
      ...options,
      onHandle: (h) => {
        h.on('progress', (p: ProgressEvent) => say(p.registered !== undefined ? `${p.message} [${p.registered}/${p.total}]` : p.message));
        h.on('log', onLog);
      },
    });
  } catch (err) {
    process.stderr.write(`[tfos] FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  say(`cluster reserved in ${((Date.now() - started) / 1000).toFixed(1)} s; roles: ${[...handle.nodes.values()].map((n) => `${n.job}:${n.taskIndex}@${n.host}:${n.port}`).join(' ')}`);
  const stop = () => {
    say('interrupted: stopping the cluster');
    void handle.kill('interrupted by the user').then(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (handle.dataFed) {
      const epochs = await handle.dataFed;
      say(`fed ${options.data}: ${epochs.map((e) => e.workers.reduce((a, w) => a + w.rows, 0)).join(' + ')} rows over ${epochs.length} epoch(s)`);
    }
    if (feed?.inference) {
      const { output } = await handle.inference(feed.inference, { output: feed.output!, overwrite: feed.overwrite, resultSchema: feed.resultSchema });
      say(`inference results written to ${output}`);
    }
    const results = await handle.shutdown();
    for (const [i, value] of results) {
      const n = handle.nodes.get(i);
      if (value !== null && value !== undefined) say(`${n?.job}:${n?.taskIndex} returned ${JSON.stringify(value)}`);
    }
    say(`finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (err) {
    process.stderr.write(`[tfos] FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
}
