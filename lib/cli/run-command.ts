/**
 * `tfos run <module> [options] -- <user args>`: TFCluster.run from the command line, with
 * progress on stderr and every trainer's output prefixed by its role (worker:1 | ...).
 */
import { parseArgs } from 'node:util';
import { InputMode } from '../protocol/input-mode';
import { ProgressEvent, LogLine, TFClusterHandle } from '../driver/cluster';
import { RouteOption, TFCluster, TFClusterRunOptions } from '../driver/tf-cluster';
import { clusterEnvironment } from '../platform/cluster-env';
import { TrainingProgress } from '../driver/training-progress';

export const RUN_USAGE = `tfos run <module> [--fn NAME] [--via local|spark-submit|livy] [--master URL] [--livy URL]
         [--livy-mode batch|session] [--cluster-size N] [--num-ps K] [--input-mode spark|tensorflow]
         [--reservation-timeout SEC] [--heartbeat-timeout SEC] [--shutdown-grace SEC] [--log-dir DIR] [--eval-node] [--no-chief] [--gpus N]
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

interface RouteFlags {
  via?: string;
  master?: string;
  livy?: string;
  'livy-mode'?: string;
  'attach-fd'?: string;
  'attach-master'?: string;
  'attach-archives'?: string;
}

/**
 * The route from the flags. No route flags: the Spark master of SPARK_MASTER or the running
 * `tfos stack`, else an embedded local Spark; a master or Livy URL left out is found by
 * TFCluster.run the same way. Under a hand-typed spark-submit the launcher passes --attach-*.
 */
function pickRoute(values: RouteFlags, conf: Record<string, string>, env: NodeJS.ProcessEnv): RouteOption {
  if (values['attach-fd'] !== undefined) {
    if (values.via || values.master || values.livy) {
      throw new Error(
        '--via, --master and --livy do not apply under spark-submit: the Spark application is the one spark-submit started (give spark-submit its --master)',
      );
    }
    return {
      attached: {
        fd: positiveInt('attach-fd', values['attach-fd'], 0, 0),
        master: values['attach-master'] ?? 'spark',
        archives: values['attach-archives'],
      },
    };
  }
  const via = values.via ?? (values.livy ? 'livy' : values.master || clusterEnvironment(env).sparkMaster ? 'spark-submit' : 'local');
  switch (via) {
    case 'local':
      return { local: { conf } };
    case 'spark-submit':
      return { sparkSubmit: { master: values.master, conf } };
    case 'livy': {
      const mode = values['livy-mode'] ?? 'batch';
      if (mode !== 'batch' && mode !== 'session') throw new Error(`--livy-mode must be batch or session, got '${mode}'`);
      return { livy: { url: values.livy, mode, conf } };
    }
    default:
      throw new Error(`--via must be local, spark-submit or livy, got '${via}'`);
  }
}

/**
 * Under spark-submit --archives packed.tgz#alias (the project packed by `tfos pack`), trainers start
 * from the executor's unpacked copy; module paths are relative to the project (--project, default .).
 */
function shippedBySparkSubmit(values: {
  'attach-archives'?: string;
  project?: string;
  'bundled-node'?: boolean;
}): TFClusterRunOptions['archive'] {
  const entry = values['attach-archives']?.split(',').find((a) => a.includes('#'));
  if (!entry) return undefined;
  const hash = entry.lastIndexOf('#');
  return {
    uri: entry.slice(0, hash),
    alias: entry.slice(hash + 1),
    projectDir: values.project ?? '.',
    bundledNode: values['bundled-node'],
  };
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
      'heartbeat-timeout': { type: 'string' },
      'shutdown-grace': { type: 'string' },
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
      // Set by the launcher of a hand-typed spark-submit that started this process (routes/attached.ts).
      'attach-fd': { type: 'string' },
      'attach-master': { type: 'string' },
      'attach-archives': { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error(`tfos run needs exactly one module path (got ${positionals.length})\nusage: ${RUN_USAGE}`);
  const inputMode = values['input-mode'];
  if (inputMode !== undefined && inputMode !== InputMode.SPARK && inputMode !== InputMode.TENSORFLOW) {
    throw new Error(`--input-mode must be spark or tensorflow, got '${inputMode}'`);
  }
  const conf = keyValues('conf', values.conf);
  const route = pickRoute(values, conf, env);
  if (values.epochs !== undefined && values.data === undefined) throw new Error('--epochs needs --data PATH (the dataset to pass over)');
  if (values.inference !== undefined && inputMode !== InputMode.SPARK) {
    throw new Error('--inference makes Spark feed the trainers: add --input-mode spark');
  }
  if (values.inference !== undefined && !values.output) throw new Error('--inference PATH needs --output PATH for the results');
  return {
    feed:
      values.inference !== undefined
        ? { inference: values.inference, output: values.output, overwrite: values.overwrite, resultSchema: values['result-schema'] }
        : undefined,
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
      // A trainer answers the driver's pings between tfjs calls: one long synchronous step on a
      // loaded machine (a big batch under nice) can outlast the default 30 s.
      heartbeatTimeout:
        values['heartbeat-timeout'] === undefined ? undefined : positiveInt('heartbeat-timeout', values['heartbeat-timeout'], 30),
      shutdownGrace: values['shutdown-grace'] === undefined ? undefined : positiveInt('shutdown-grace', values['shutdown-grace'], 60),
      logDir: values['log-dir'],
      evalNode: values['eval-node'],
      masterNode: values['no-chief'] ? null : 'chief',
      gpusPerNode: positiveInt('gpus', values.gpus, 0, 0),
      env: keyValues('env', values.env),
      webhdfs: env.TFOS_WEBHDFS?.trim() || undefined,
      via: route,
      archive: values.archive
        ? { uri: values.archive, projectDir: values.project ?? '.', bundledNode: values['bundled-node'] }
        : shippedBySparkSubmit(values),
    },
  };
}

export async function runCommand(argv: string[]): Promise<number> {
  const { options, quiet, feed } = await parseRunArgs(argv);
  // One progress bar for the cluster (from the chief's TFNode.reportMetrics); other output prints above it.
  const progress = new TrainingProgress();
  const say = (line: string) => {
    if (!quiet) progress.log(`[tfos] ${line}`, process.stderr);
  };
  const onLog = (l: LogLine) => progress.log(`${l.label.padEnd(10)}| ${l.line}`);
  say(`starting ${options.numExecutors} TF nodes (${options.numPs ?? 0} ps) for ${options.module}`);
  const started = Date.now();
  let handle: TFClusterHandle;
  try {
    handle = await TFCluster.run({
      ...options,
      onHandle: (h) => {
        h.on('progress', (p: ProgressEvent) => say(p.registered !== undefined ? `${p.message} [${p.registered}/${p.total}]` : p.message));
        h.on('log', onLog);
        if (!quiet) progress.attach(h);
      },
    });
  } catch (err) {
    process.stderr.write(`[tfos] FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  say(
    `cluster reserved in ${((Date.now() - started) / 1000).toFixed(1)} s; roles: ${[...handle.nodes.values()].map((n) => `${n.job}:${n.taskIndex}@${n.host}:${n.port}`).join(' ')}`,
  );
  const stop = () => {
    say('interrupted: stopping the cluster');
    void handle.kill('interrupted by the user').then(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (handle.dataFed) {
      const epochs = await handle.dataFed;
      say(
        `fed ${options.data}: ${epochs.map((e) => e.workers.reduce((a, w) => a + w.rows, 0)).join(' + ')} rows over ${epochs.length} epoch(s)`,
      );
    }
    if (feed?.inference) {
      const { output } = await handle.inference(feed.inference, {
        output: feed.output!,
        overwrite: feed.overwrite,
        resultSchema: feed.resultSchema,
      });
      say(`inference results written to ${output}`);
    }
    const results = await handle.shutdown();
    progress.finish();
    for (const [i, value] of results) {
      const n = handle.nodes.get(i);
      if (value !== null && value !== undefined) say(`${n?.job}:${n?.taskIndex} returned ${JSON.stringify(value)}`);
    }
    say(`finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (err) {
    progress.finish();
    process.stderr.write(`[tfos] FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
}
