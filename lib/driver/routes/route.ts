import { QUICK_START_JVM_OPTIONS } from '../../platform/spark';

/**
 * A route is how the launcher (spark-jobs/tfos_launcher.py) becomes a running Spark application:
 * spark-submit (embedded local Spark or a given master) or Livy. Every route submits the same
 * launcher with the same two arguments; everything else comes from the driver over HTTP.
 */
export interface LaunchPlan {
  appName: string;
  clusterSize: number;
  /** URL of the driver's control server as the launcher must reach it. */
  controlUrl: string;
  /**
   * File (0600) with the launcher's one-time bootstrap token: the only credential a route hands
   * on. The launcher exchanges it for the cluster secret with its first request; after that the
   * token is worthless, and a second use fails the cluster.
   */
  tokenFile: string;
  /** Where the route keeps the Spark application's own output (spark-submit's stdout/stderr). */
  logFile: string;
  /**
   * When the launcher last reached the driver (ms since the epoch, 0 before its first request).
   * A route whose own view of the application fails (Livy restarting, or restarted and forgetting
   * the batch) asks this before declaring the application dead.
   */
  launcherLastSeen?: () => number;
  /**
   * The launcher's last word ('finished', 'failed'), once it sent it: its application is ending
   * on its own, so a route that cannot see it any more need not wait for its silence.
   */
  launcherEnded?: () => 'finished' | 'failed' | undefined;
  /** Spark properties this job needs (on top of the user's). */
  conf: Record<string, string>;
}

export interface AppExit {
  ok: boolean;
  /** Exit code, Livy state or similar, for error messages. */
  detail: string;
  /** The end of the application's own output (spark-submit stderr, Livy driver log). */
  logTail: string;
}

export interface SubmittedApp {
  /** e.g. "spark-submit --master local[3] (pid 1234)" or "Livy batch 7 at http://..." */
  describe: string;
  /** Resolves when the Spark application has ended, however it ended. */
  exited: Promise<AppExit>;
  /** Stops the application and everything it started; safe to call more than once. */
  kill(): Promise<void>;
}

export interface SparkRoute {
  readonly name: 'local' | 'spark-submit' | 'livy' | 'attached';
  submit(plan: LaunchPlan): Promise<SubmittedApp>;
}

/** Properties every route sets: barrier stages need static allocation and a prompt slot check. */
export function baseConf(plan: LaunchPlan): Record<string, string> {
  return {
    'spark.dynamicAllocation.enabled': 'false',
    // The launcher waits for enough slots itself; Spark's own check then passes at once.
    'spark.scheduler.barrier.maxConcurrentTasksCheck.interval': '1s',
    'spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures': '3',
    // A trainer that failed is reported to the driver; a silent re-run would start training over.
    'spark.task.maxFailures': '1',
    'spark.ui.showConsoleProgress': 'false',
    // A barrier stage starts all its tasks at once or none: no waiting for a data-local slot
    // (a feed's data goes over the network to its trainer anyway).
    'spark.locality.wait': '0s',
    ...plan.conf,
  };
}

/**
 * The quick-start flags (lib/platform/spark.ts) for the JVMs that need no C2: the Spark driver (it
 * schedules; `local` mode's driver is also the executor), and executors that only supervise
 * trainers (no InputMode.SPARK feeding, whose Parquet → Arrow path runs in the executor JVM); plus
 * Spark's class archive for JVMs on this machine (`archive`, when `tfos setup` made one). A
 * user's own spark.*.extraJavaOptions replace these (routes apply the user's conf last).
 */
export function quickStartJvmConf(opts: { local: boolean; feeds: boolean; archive?: string }): Record<string, string> {
  const cds = opts.archive ? ` -XX:SharedArchiveFile=${opts.archive}` : '';
  const conf: Record<string, string> = {};
  conf['spark.driver.extraJavaOptions'] = (opts.local && opts.feeds ? '' : QUICK_START_JVM_OPTIONS) + cds;
  if (!opts.local) conf['spark.executor.extraJavaOptions'] = (opts.feeds ? '' : QUICK_START_JVM_OPTIONS) + cds;
  for (const [k, v] of Object.entries(conf)) {
    if (v.trim()) conf[k] = v.trim();
    else delete conf[k];
  }
  return conf;
}
