/**
 * Livy route: the launcher runs as a Livy batch (one Spark application per cluster), or inside an
 * interactive pyspark session that outlives the cluster (a notebook runs several clusters, and
 * later feeding stages, on one warm Spark application).
 *
 * Batch: Livy runs spark-submit on its own host, so the launcher file must be readable there —
 * on one machine the repo's file (Livy's local-dir whitelist must allow it), on a real cluster an
 * hdfs:// copy (`launcherFile`). Only the one-time bootstrap token travels, as the Spark property
 * spark.tfos.bootstrap.token (Spark redacts names with 'token'); Livy may log and show it, but
 * it is exchanged within seconds and worthless afterwards (a second use fails the cluster).
 * Session: the launcher's source is sent as the statement itself, so nothing has to be shipped.
 */
import * as fs from 'node:fs';
import {
  isBatchFinal,
  isTransientLivyError,
  LivyClient,
  LivyHttpError,
  LivyStatement,
  PollOptions,
  pollUntil,
  STATEMENT_FINAL_STATES,
} from '../../io/livy-client';
import { sleep } from '../../platform/sleep';
import { AppExit, baseConf, LaunchPlan, SparkRoute, SubmittedApp } from './route';
import { LAUNCHER_PATH } from './spark-submit';

export interface LivyRouteOptions {
  url: string;
  /** 'batch' (default): one Livy batch per cluster. 'session': run inside an interactive session. */
  mode?: 'batch' | 'session';
  /** Reuse this session id (mode 'session'); otherwise one is created and closed with the cluster. */
  sessionId?: number;
  /** Launcher file as the Livy server can read it (default: this package's spark-jobs/tfos_launcher.py). */
  launcherFile?: string;
  conf?: Record<string, string>;
  driverMemory?: string;
  executorMemory?: string;
  executorCores?: number;
  numExecutors?: number;
  archives?: string[];
  files?: string[];
  /** Livy proxy user / auth headers are passed through to the client. */
  proxyUser?: string;
  headers?: Record<string, string>;
}

/**
 * Watching a running application with the client's poller: no deadline (a cluster runs for
 * hours), a Livy that is briefly unreachable or overloaded is ridden out (20 failed polls in a
 * row, about 40 s), and the timer never holds the driver process open by itself.
 */
const WATCH: PollOptions = {
  timeoutMs: Infinity,
  pollMs: 250,
  maxPollMs: 2000,
  retries: 20,
  clock: { now: () => Date.now(), sleep: (ms) => sleep(ms, { keepAlive: false }) },
};

/**
 * A session this route creates is deleted by Livy once nobody has asked about it for this long
 * (Livy's session heartbeat; every request on /sessions/<id> renews it, and a live route polls
 * every few seconds). So a driver that dies without closing it (killed, or a test process that
 * exits mid-run) frees its Spark application's cores within minutes, not after the server's idle
 * timeout (livy.server.session.timeout, 1 hour by default).
 */
export const SESSION_HEARTBEAT_SEC = 120;

/**
 * How long Livy waits for a new session's Spark driver to call back (livy.rsc.server.connect.timeout,
 * 90 s by default): a loaded machine can take longer to start that JVM, and Livy then kills the
 * session. As long as the route waits for the session to become idle.
 */
export const SESSION_START_TIMEOUT_MS = 600_000;

/**
 * A pyspark statement that defines the launcher's functions (`source`: tfos_launcher.py, which
 * runs nothing itself when TFOS_SESSION is set) and then runs the Python line `call`. One
 * expression statement: Livy 0.7's Python shell cannot compile multi-statement cells on Python
 * >= 3.8. A JSON string literal is also a valid Python string literal.
 */
export function launcherStatement(source: string, call: string): string {
  const program = `TFOS_SESSION = True\n${source}\n${call}\n`;
  return `exec(compile(${JSON.stringify(program)}, 'tfos_launcher.py', 'exec'), globals())`;
}

export class LivyRoute implements SparkRoute {
  readonly name = 'livy' as const;
  private readonly client: LivyClient;

  constructor(private readonly opts: LivyRouteOptions) {
    this.client = new LivyClient({ url: opts.url, headers: opts.headers });
  }

  submit(plan: LaunchPlan): Promise<SubmittedApp> {
    return this.opts.mode === 'session' ? this.submitSession(plan) : this.submitBatch(plan);
  }

  private resources() {
    const o = this.opts;
    return {
      driverMemory: o.driverMemory,
      executorMemory: o.executorMemory,
      executorCores: o.executorCores,
      numExecutors: o.numExecutors,
      archives: o.archives,
      files: o.files,
      proxyUser: o.proxyUser,
    };
  }

  private async submitBatch(plan: LaunchPlan): Promise<SubmittedApp> {
    const token = fs.readFileSync(plan.tokenFile, 'utf8').trim();
    const batch = await this.client.submitBatch({
      file: this.opts.launcherFile ?? LAUNCHER_PATH,
      args: ['--control', plan.controlUrl],
      name: plan.appName,
      conf: { 'spark.executor.cores': '1', ...baseConf(plan), ...this.opts.conf, 'spark.tfos.bootstrap.token': token },
      ...this.resources(),
    });
    const describe = `Livy batch ${batch.id} at ${this.opts.url}`;
    let stopped = false;
    // The client's own polling rules first (transient failures ridden out); when it gives up, the
    // launcher's contact with the driver decides whether the application is really gone.
    const exited = followThroughLivy(
      describe,
      plan,
      () => stopped,
      async () => {
        const state = await pollUntil(
          describe,
          () => this.client.batchState(batch.id),
          isBatchFinal,
          (st) => st,
          WATCH,
        );
        const log = await this.client.batchLog(batch.id, undefined, 200).catch(() => ({ log: [] as string[] }));
        return { ok: state === 'success', detail: `${describe} ended in state ${state}`, logTail: log.log.slice(-60).join('\n') };
      },
    );
    return {
      describe,
      exited,
      kill: async () => {
        if (stopped) return exited.then(() => undefined);
        stopped = true;
        await this.client.killBatch(batch.id).catch(() => undefined);
        await Promise.race([exited, sleep(20_000, { keepAlive: false })]);
      },
    };
  }

  private async submitSession(plan: LaunchPlan): Promise<SubmittedApp> {
    const ownSession = this.opts.sessionId === undefined;
    const sessionId =
      this.opts.sessionId ??
      (
        await this.client.createSession({
          kind: 'pyspark',
          name: plan.appName,
          heartbeatTimeoutInSecond: SESSION_HEARTBEAT_SEC,
          conf: {
            'spark.executor.cores': '1',
            'livy.rsc.server.connect.timeout': `${SESSION_START_TIMEOUT_MS / 1000}s`,
            ...baseConf(plan),
            ...this.opts.conf,
          },
          ...this.resources(),
        })
      ).id;
    const describe = `Livy session ${sessionId} at ${this.opts.url}`;
    try {
      await this.client.waitForSessionIdle(sessionId, { timeoutMs: SESSION_START_TIMEOUT_MS });
    } catch (err) {
      if (ownSession) await this.client.closeSession(sessionId).catch(() => undefined);
      throw err;
    }
    // The statement (which Livy's statements API returns) holds only the one-time token.
    const token = fs.readFileSync(plan.tokenFile, 'utf8').trim();
    const source = fs.readFileSync(this.opts.launcherFile ?? LAUNCHER_PATH, 'utf8');
    const own = ownSession ? 'True' : 'False';
    const code = launcherStatement(source, `print(run_session(sc, ${JSON.stringify(plan.controlUrl)}, ${JSON.stringify(token)}, ${own}))`);
    const statement = await this.client.submitStatement(sessionId, code, 'pyspark');
    let stopped = false;
    const exited = followThroughLivy(
      describe,
      plan,
      () => stopped,
      async () => {
        const st: LivyStatement = await pollUntil(
          `${describe}, statement ${statement.id}`,
          () => this.client.getStatement(sessionId, statement.id),
          (x) => STATEMENT_FINAL_STATES.includes(x.state),
          (x) => x.state,
          WATCH,
        );
        const out = st.output;
        const text =
          out && out.status === 'ok'
            ? String(out.data?.['text/plain'] ?? '')
            : out
              ? `${out.ename}: ${out.evalue}\n${(out.traceback ?? []).join('')}`
              : '';
        const ok = st.state === 'available' && out?.status === 'ok' && text.trim() === '0';
        if (ownSession) await this.client.closeSession(sessionId).catch(() => undefined);
        return {
          ok,
          detail: `${describe}, statement ${st.id} ended ${st.state}${text ? ` (${text.trim().slice(0, 200)})` : ''}`,
          logTail: text,
        };
      },
    );
    return {
      describe,
      exited,
      kill: async () => {
        if (stopped) return exited.then(() => undefined);
        stopped = true;
        await this.client.cancelStatement(sessionId, statement.id).catch(() => undefined);
        if (ownSession) await this.client.closeSession(sessionId).catch(() => undefined);
        await Promise.race([exited, sleep(20_000, { keepAlive: false })]);
      },
    };
  }
}

/** How long the launcher may be silent, while Livy cannot say, before the application counts as gone. */
export const LAUNCHER_SILENCE_MS = 30_000;

/**
 * Follows the application through Livy until `probe` reports how it ended. When Livy cannot tell
 * — unreachable, overloaded (isTransientLivyError), or restarted and no longer knowing the batch
 * or session (404) — the launcher decides: it reaches the driver every 2 s, so a healthy cluster
 * rides out a Livy restart, and only a launcher that also fell silent for LAUNCHER_SILENCE_MS (or
 * never spoke) ends the watch, with both facts in the message. A launcher that already reported
 * how its cluster ended ends the watch at once, with that outcome.
 */
export async function followThroughLivy(
  describe: string,
  plan: Pick<LaunchPlan, 'launcherLastSeen' | 'launcherEnded'>,
  stopped: () => boolean,
  probe: () => Promise<AppExit | undefined>,
  pollMs = 250,
): Promise<AppExit> {
  let delay = pollMs;
  for (let attempt = 0; ; attempt++) {
    try {
      const exit = await probe();
      if (exit) return exit;
    } catch (err) {
      if (stopped()) return { ok: true, detail: 'stopped', logTail: '' };
      const gone = err instanceof LivyHttpError && err.status === 404;
      const what = gone
        ? 'Livy no longer knows it (restarted?)'
        : isTransientLivyError(err)
          ? 'Livy is unreachable'
          : 'Livy failed to answer';
      // The launcher already sent its last word: the application ends on its own (Livy, restarted,
      // may never know it); no need to wait out the launcher's silence.
      const ended = plan.launcherEnded?.();
      if (ended) {
        return {
          ok: ended === 'finished',
          detail: `${describe}: ${what}, after the launcher reported its cluster ${ended}`,
          logTail: '',
        };
      }
      const seen = plan.launcherLastSeen?.() ?? 0;
      const silentMs = Date.now() - seen;
      // Before the launcher's first request only a transient failure is waited out (the driver's
      // reservation timeout bounds that wait); afterwards the launcher's silence decides.
      const waitOut = seen ? silentMs <= LAUNCHER_SILENCE_MS : isTransientLivyError(err);
      if (!waitOut) {
        const launcher = seen
          ? `the launcher has not reached the driver for ${Math.round(silentMs / 1000)} s`
          : 'the launcher never reached the driver';
        return {
          ok: false,
          detail: `${describe}: ${what} (${err instanceof Error ? err.message : String(err)}) and ${launcher}`,
          logTail: '',
        };
      }
      // The Spark side still talks to us: keep watching; Livy may come back.
    }
    await sleep(delay);
    delay = Math.min(2000, pollMs * Math.pow(1.5, attempt + 1));
  }
}
