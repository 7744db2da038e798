/**
 * A typed client for Apache Livy's REST API (batches and interactive sessions), on Node's fetch.
 *
 * Every failure names what was asked of which server: the method, the URL, the HTTP status and
 * Livy's own message. Waiting is polling with capped exponential backoff, because Livy has no
 * push notifications and a JVM start on a small machine takes anything from seconds to minutes.
 */
import { sleep } from '../platform/sleep';

// ---------------------------------------------------------------------------------------------
// States and payloads, as Livy reports them
// ---------------------------------------------------------------------------------------------

/** States a batch or session goes through (Livy uses one enumeration for both). */
export type LivySessionState =
  'not_started' | 'starting' | 'recovering' | 'idle' | 'running' | 'busy' | 'shutting_down' | 'error' | 'dead' | 'killed' | 'success';

/** States a batch can be in; a batch never becomes idle or busy. */
export type LivyBatchState = Extract<
  LivySessionState,
  'not_started' | 'starting' | 'recovering' | 'running' | 'shutting_down' | 'error' | 'dead' | 'killed' | 'success'
>;

export type LivyStatementState = 'waiting' | 'running' | 'available' | 'error' | 'cancelling' | 'cancelled';

export type LivySessionKind = 'spark' | 'pyspark' | 'sparkr' | 'sql';

/** Terminal batch states; all but `success` are failures. */
export const BATCH_FINAL_STATES: readonly LivyBatchState[] = ['success', 'dead', 'killed', 'error'];
/** States from which a session never becomes idle again. */
export const SESSION_FINAL_STATES: readonly LivySessionState[] = ['shutting_down', 'error', 'dead', 'killed', 'success'];
export const STATEMENT_FINAL_STATES: readonly LivyStatementState[] = ['available', 'error', 'cancelled'];

export function isBatchFinal(state: string): boolean {
  return (BATCH_FINAL_STATES as readonly string[]).includes(state);
}

export function isSessionFinal(state: string): boolean {
  return (SESSION_FINAL_STATES as readonly string[]).includes(state);
}

export interface LivyAppInfo {
  driverLogUrl?: string | null;
  sparkUiUrl?: string | null;
  [key: string]: string | null | undefined;
}

export interface LivyBatch {
  id: number;
  name?: string | null;
  owner?: string | null;
  proxyUser?: string | null;
  state: LivyBatchState;
  appId: string | null;
  appInfo: LivyAppInfo;
  /** The last lines of the spark-submit output Livy holds. */
  log: string[];
}

export interface LivySession {
  id: number;
  name?: string | null;
  appId: string | null;
  owner?: string | null;
  proxyUser?: string | null;
  state: LivySessionState;
  kind: LivySessionKind | string;
  appInfo: LivyAppInfo;
  log: string[];
  ttl?: string | null;
  driverMemory?: string | null;
  driverCores?: number;
  executorMemory?: string | null;
  executorCores?: number;
  conf?: Record<string, string>;
}

export interface LivyLog {
  id: number;
  from: number;
  /** Total lines Livy holds for this batch/session (the field is called `total` in 0.6+, `size` before). */
  total?: number;
  size?: number;
  log: string[];
}

export interface StatementOkOutput {
  status: 'ok';
  execution_count: number;
  data: Record<string, unknown> & { 'text/plain'?: string };
}

export interface StatementErrorOutput {
  status: 'error';
  execution_count: number;
  ename: string;
  evalue: string;
  traceback: string[];
}

export type StatementOutput = StatementOkOutput | StatementErrorOutput;

export interface LivyStatement {
  id: number;
  code: string;
  state: LivyStatementState;
  output: StatementOutput | null;
  progress?: number;
  started?: number;
  completed?: number;
}

/** Options Livy accepts for both batches and sessions (POST body fields). */
export interface SparkResourceOptions {
  name?: string;
  proxyUser?: string;
  jars?: string[];
  pyFiles?: string[];
  files?: string[];
  archives?: string[];
  driverMemory?: string;
  driverCores?: number;
  executorMemory?: string;
  executorCores?: number;
  numExecutors?: number;
  queue?: string;
  conf?: Record<string, string>;
}

export interface BatchRequest extends SparkResourceOptions {
  /** The application: a .py file or a jar (path or URI the Livy server can read). */
  file: string;
  /** Main class, for jar applications. */
  className?: string;
  args?: string[];
}

export interface SessionRequest extends SparkResourceOptions {
  kind?: LivySessionKind;
  heartbeatTimeoutInSecond?: number;
  /** Livy closes the session after this much inactivity, e.g. '10m'. */
  ttl?: string;
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export class LivyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LivyError';
  }
}

/** Livy answered with a non-2xx status. */
export class LivyHttpError extends LivyError {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    /** Livy's message (the `msg` field of its JSON error body, or the raw body). */
    readonly livyMessage: string,
  ) {
    super(`Livy ${method} ${url} failed with HTTP ${status}${livyMessage ? `: ${livyMessage}` : ''}`);
    this.name = 'LivyHttpError';
  }
}

/** The server could not be reached at all (refused, reset, DNS, request timeout). */
export class LivyConnectionError extends LivyError {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly code: string,
    detail: string,
  ) {
    super(`cannot reach Livy at ${url} (${method}): ${code}${detail && detail !== code ? ` - ${detail}` : ''}`);
    this.name = 'LivyConnectionError';
  }
}

export class LivyTimeoutError extends LivyError {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastState: string | undefined,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${what} (last state: ${lastState ?? 'unknown'})`);
    this.name = 'LivyTimeoutError';
  }
}

/** A batch ended in dead / killed / error; carries the tail of the driver's (spark-submit's) log. */
export class LivyBatchFailedError extends LivyError {
  constructor(
    readonly batchId: number,
    readonly state: LivyBatchState,
    readonly log: string[],
    readonly appId: string | null = null,
  ) {
    super(`Livy batch ${batchId}${appId ? ` (${appId})` : ''} ended in state '${state}'\n--- driver log tail ---\n${log.join('\n')}`);
    this.name = 'LivyBatchFailedError';
  }
}

/** A session ended (dead, error, killed...) while we waited for it. */
export class LivySessionFailedError extends LivyError {
  constructor(
    readonly sessionId: number,
    readonly state: LivySessionState,
    readonly log: string[],
  ) {
    super(`Livy session ${sessionId} ended in state '${state}'\n--- session log tail ---\n${log.join('\n')}`);
    this.name = 'LivySessionFailedError';
  }
}

/** A statement ran and raised (status 'error'), or was cancelled. */
export class LivyStatementError extends LivyError {
  constructor(
    readonly sessionId: number,
    readonly statementId: number,
    readonly ename: string,
    readonly evalue: string,
    readonly traceback: string[],
  ) {
    super(
      `statement ${statementId} in Livy session ${sessionId} failed: ${ename}: ${evalue}${traceback.length ? `\n${traceback.join('')}` : ''}`,
    );
    this.name = 'LivyStatementError';
  }
}

/** Livy's error bodies are JSON `{"msg": "..."}`; older versions and proxies send plain text. */
export function parseLivyErrorBody(body: string): string {
  const text = body.trim();
  if (!text) return '';
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object') {
      const msg = (parsed as Record<string, unknown>).msg ?? (parsed as Record<string, unknown>).message;
      if (typeof msg === 'string') return msg;
    }
    if (typeof parsed === 'string') return parsed;
  } catch {
    /* not JSON */
  }
  return text.length > 2000 ? `${text.slice(0, 2000)}...` : text;
}

// ---------------------------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------------------------

export interface PollOptions {
  /** Give up after this long (default: 10 minutes). */
  timeoutMs?: number;
  /** First delay between polls (default 250 ms); grows by `factor` up to `maxPollMs`. */
  pollMs?: number;
  /** Longest delay between polls (default 5 s). */
  maxPollMs?: number;
  /** Growth factor of the delay (default 1.5). */
  factor?: number;
  /** Called with every state seen, e.g. for progress output. */
  onState?: (state: string) => void;
  /**
   * How many failed probes in a row to ride out when the failure is transient (the server
   * unreachable or timing out, HTTP 502/503/504), e.g. a Livy busy starting JVMs on a small
   * machine; default 3. Other errors (404, 500, ...) end the wait at once.
   */
  retries?: number;
  /** Time source and timer (default: the real ones); tests inject a fake clock to see the delays. */
  clock?: PollClock;
}

export interface PollClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** The delay before poll number `attempt` (0-based): pollMs * factor^attempt, capped at maxPollMs. */
export function backoffDelay(attempt: number, pollMs = 250, maxPollMs = 5000, factor = 1.5): number {
  if (attempt <= 0) return Math.min(pollMs, maxPollMs);
  const raw = pollMs * Math.pow(factor, attempt);
  return Math.min(Number.isFinite(raw) ? raw : maxPollMs, maxPollMs);
}

const REAL_CLOCK: PollClock = { now: () => Date.now(), sleep: (ms) => sleep(ms) };

/** Errors worth retrying: the server was unreachable or overloaded, not wrong. */
export function isTransientLivyError(err: unknown): boolean {
  if (err instanceof LivyConnectionError) return true;
  return err instanceof LivyHttpError && [502, 503, 504].includes(err.status);
}

/**
 * Calls `probe` until `done(value)` holds, sleeping with capped exponential backoff between calls.
 * Throws LivyTimeoutError naming `what` and the last state when `timeoutMs` passes first; rides
 * out up to `retries` transient probe failures in a row (see isTransientLivyError).
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  stateOf: (value: T) => string,
  opts: PollOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const retries = opts.retries ?? 3;
  const { now, sleep } = opts.clock ?? REAL_CLOCK;
  const deadline = now() + timeoutMs;
  let lastState: string | undefined;
  let failures = 0;
  for (let attempt = 0; ; attempt++) {
    let value: T;
    try {
      value = await probe();
      failures = 0;
    } catch (err) {
      failures++;
      if (!isTransientLivyError(err) || failures > retries || now() >= deadline) throw err;
      await sleep(Math.min(backoffDelay(attempt, opts.pollMs, opts.maxPollMs, opts.factor), Math.max(0, deadline - now())));
      continue;
    }
    const state = stateOf(value);
    if (state !== lastState) opts.onState?.(state);
    lastState = state;
    if (done(value)) return value;
    const remaining = deadline - now();
    if (remaining <= 0) throw new LivyTimeoutError(what, timeoutMs, lastState);
    await sleep(Math.min(backoffDelay(attempt, opts.pollMs, opts.maxPollMs, opts.factor), remaining));
  }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

export interface LivyClientOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8998 */
  url: string;
  /** Timeout of one HTTP request (default 60 s); waiting for a batch has its own timeout. */
  timeoutMs?: number;
  /** Value of X-Requested-By, which Livy requires on POST/DELETE when CSRF protection is on. */
  requestedBy?: string;
  /** Extra headers, e.g. Authorization. */
  headers?: Record<string, string>;
}

export interface RunStatementOptions extends PollOptions {
  /** Language of the code when the session is of another kind (Livy 0.5+ sessions are multi-language). */
  kind?: LivySessionKind;
}

/** Body fields we send, dropping undefined ones so Livy applies its own defaults. */
function compact<T extends object>(obj: T): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) out[k] = v;
  return out as Partial<T>;
}

export class LivyClient {
  readonly url: string;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;

  constructor(opts: LivyClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.headers = {
      Accept: 'application/json',
      'X-Requested-By': opts.requestedBy ?? 'tfjs-on-spark',
      ...(opts.headers ?? {}),
    };
  }

  /** One request; JSON in and out. Errors: LivyHttpError (non-2xx), LivyConnectionError. */
  async request<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const url = `${this.url}${path}`;
    const headers: Record<string, string> = { ...this.headers };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw connectionError(method, url, err, this.timeoutMs);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw connectionError(method, url, err, this.timeoutMs);
    }
    if (!res.ok) throw new LivyHttpError(method, url, res.status, parseLivyErrorBody(text));
    if (!text.trim()) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new LivyHttpError(method, url, res.status, `response is not JSON: ${text.slice(0, 500)}`);
    }
  }

  // -- server ---------------------------------------------------------------------------------

  /** True when the server answers GET /sessions with 200. */
  async isHealthy(): Promise<boolean> {
    try {
      await this.request('GET', '/sessions?size=1');
      return true;
    } catch {
      return false;
    }
  }

  // -- batches --------------------------------------------------------------------------------

  submitBatch(req: BatchRequest): Promise<LivyBatch> {
    return this.request<LivyBatch>('POST', '/batches', compact(req));
  }

  listBatches(from = 0, size = 100): Promise<{ from: number; total: number; sessions: LivyBatch[] }> {
    return this.request('GET', `/batches?from=${from}&size=${size}`);
  }

  getBatch(id: number): Promise<LivyBatch> {
    return this.request<LivyBatch>('GET', `/batches/${id}`);
  }

  async batchState(id: number): Promise<LivyBatchState> {
    const res = await this.request<{ id: number; state: LivyBatchState }>('GET', `/batches/${id}/state`);
    return res.state;
  }

  /** Lines of the batch's spark-submit output; without `from`, Livy returns the last `size` lines. */
  batchLog(id: number, from?: number, size?: number): Promise<LivyLog> {
    return this.request<LivyLog>('GET', `/batches/${id}/log${query({ from, size })}`);
  }

  /** Kills (if running) and forgets the batch. */
  async killBatch(id: number): Promise<void> {
    await this.request('DELETE', `/batches/${id}`);
  }

  /**
   * Waits until the batch finishes. Resolves with 'success'; throws LivyBatchFailedError (state +
   * driver log tail) for dead/killed/error, LivyTimeoutError when timeoutMs passes first.
   */
  async waitForBatch(id: number, opts: PollOptions & { logLines?: number } = {}): Promise<'success'> {
    const state = await pollUntil(
      `Livy batch ${id}`,
      () => this.batchState(id),
      isBatchFinal,
      (s) => s,
      opts,
    );
    if (state === 'success') return state;
    const [batch, log] = await Promise.all([
      this.getBatch(id).catch(() => undefined),
      this.batchLog(id, undefined, opts.logLines ?? 200).catch(() => undefined),
    ]);
    throw new LivyBatchFailedError(id, state, log?.log ?? batch?.log ?? [], batch?.appId ?? null);
  }

  /** submitBatch + waitForBatch; returns the finished batch. */
  async runBatch(req: BatchRequest, opts: PollOptions = {}): Promise<LivyBatch> {
    const batch = await this.submitBatch(req);
    await this.waitForBatch(batch.id, opts);
    return this.getBatch(batch.id);
  }

  // -- sessions -------------------------------------------------------------------------------

  createSession(req: SessionRequest = {}): Promise<LivySession> {
    return this.request<LivySession>('POST', '/sessions', compact(req));
  }

  listSessions(from = 0, size = 100): Promise<{ from: number; total: number; sessions: LivySession[] }> {
    return this.request('GET', `/sessions?from=${from}&size=${size}`);
  }

  getSession(id: number): Promise<LivySession> {
    return this.request<LivySession>('GET', `/sessions/${id}`);
  }

  async sessionState(id: number): Promise<LivySessionState> {
    const res = await this.request<{ id: number; state: LivySessionState }>('GET', `/sessions/${id}/state`);
    return res.state;
  }

  sessionLog(id: number, from?: number, size?: number): Promise<LivyLog> {
    return this.request<LivyLog>('GET', `/sessions/${id}/log${query({ from, size })}`);
  }

  /** Waits until the session can take statements; throws LivySessionFailedError if it dies first. */
  async waitForSessionIdle(id: number, opts: PollOptions = {}): Promise<'idle'> {
    const state = await pollUntil(
      `Livy session ${id} to become idle`,
      () => this.sessionState(id),
      (s) => s === 'idle' || isSessionFinal(s),
      (s) => s,
      opts,
    );
    if (state === 'idle') return state;
    const log = await this.sessionLog(id, undefined, 200).catch(() => undefined);
    throw new LivySessionFailedError(id, state, log?.log ?? []);
  }

  submitStatement(sessionId: number, code: string, kind?: LivySessionKind): Promise<LivyStatement> {
    return this.request<LivyStatement>('POST', `/sessions/${sessionId}/statements`, compact({ code, kind }));
  }

  getStatement(sessionId: number, statementId: number): Promise<LivyStatement> {
    return this.request<LivyStatement>('GET', `/sessions/${sessionId}/statements/${statementId}`);
  }

  async cancelStatement(sessionId: number, statementId: number): Promise<void> {
    await this.request('POST', `/sessions/${sessionId}/statements/${statementId}/cancel`, {});
  }

  /**
   * Runs code in the session and waits for the result. Resolves with the whole ok output;
   * throws LivyStatementError (ename, evalue, traceback) when the code raised or was cancelled.
   */
  async executeStatement(sessionId: number, code: string, opts: RunStatementOptions = {}): Promise<StatementOkOutput> {
    const submitted = await this.submitStatement(sessionId, code, opts.kind);
    const st = await pollUntil(
      `statement ${submitted.id} in Livy session ${sessionId}`,
      () => this.getStatement(sessionId, submitted.id),
      (s) => (STATEMENT_FINAL_STATES as readonly string[]).includes(s.state),
      (s) => s.state,
      opts,
    );
    return statementResult(sessionId, st);
  }

  /** Like executeStatement, but resolves with the text/plain result (what a REPL would print). */
  async runStatement(sessionId: number, code: string, opts: RunStatementOptions = {}): Promise<string> {
    const out = await this.executeStatement(sessionId, code, opts);
    const text = out.data['text/plain'];
    return typeof text === 'string' ? text : JSON.stringify(out.data);
  }

  /** Stops the session's Spark application and forgets the session. */
  async closeSession(id: number): Promise<void> {
    await this.request('DELETE', `/sessions/${id}`);
  }
}

/** Turns a finished statement into its ok output, or throws LivyStatementError. */
export function statementResult(sessionId: number, st: LivyStatement): StatementOkOutput {
  if (st.state === 'cancelled' || st.state === 'cancelling') {
    throw new LivyStatementError(sessionId, st.id, 'Cancelled', 'the statement was cancelled', []);
  }
  const out = st.output;
  if (!out) {
    throw new LivyStatementError(sessionId, st.id, 'NoOutput', `statement ended in state '${st.state}' without output`, []);
  }
  if (out.status === 'ok') return out;
  const traceback = Array.isArray(out.traceback) ? out.traceback : [];
  throw new LivyStatementError(sessionId, st.id, out.ename ?? 'Error', out.evalue ?? '', traceback);
}

function query(params: Record<string, number | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** fetch rejects with TypeError('fetch failed') and the real reason in `cause`. */
function connectionError(method: string, url: string, err: unknown, timeoutMs: number): LivyConnectionError {
  const e = err as {
    name?: string;
    message?: string;
    code?: string;
    cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> };
  };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
    return new LivyConnectionError(method, url, 'ETIMEDOUT', `no answer within ${timeoutMs} ms`);
  }
  const cause = e?.cause;
  // Node reports "localhost" failures on both ::1 and 127.0.0.1 as an AggregateError in cause.errors.
  const code = cause?.code ?? cause?.errors?.find((x) => x.code)?.code ?? e?.code ?? 'ECONNERROR';
  return new LivyConnectionError(method, url, code, cause?.message || e?.message || String(err));
}
