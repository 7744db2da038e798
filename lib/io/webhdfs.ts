/**
 * A typed WebHDFS REST client with no dependencies: Node's global fetch for the NameNode and for
 * reads, node:http for the one request fetch cannot make (see sendBody).
 *
 * Metadata operations (LISTSTATUS, GETFILESTATUS, MKDIRS, RENAME, DELETE, GETCONTENTSUMMARY) are
 * one request to the NameNode. Data operations (CREATE, APPEND, OPEN) take two steps: the NameNode
 * answers with the DataNode to talk to (a 307 Location, or with `noredirect=true` a JSON
 * `{"Location": ...}`), and the data then goes to (or comes from) that DataNode. We do both steps
 * ourselves, so a streamed request body is sent exactly once, to the DataNode, and is never
 * replayed by an HTTP library's redirect handling.
 *
 * Every failure is a WebHdfsError naming the operation, the path, the host that answered (or could
 * not be reached) and, when HDFS sent one, its RemoteException.
 */
import { checkedHdfsPath } from './hdfs-path';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import { Readable } from 'node:stream';

export interface WebHdfsClientOptions {
  /** NameNode HTTP endpoint, e.g. http://127.0.0.1:9870 (a trailing /webhdfs/v1 is accepted). */
  url: string;
  /** Sent as user.name on every request; default HADOOP_USER_NAME, else the OS user. */
  user?: string;
  /**
   * How long a request may wait on the network without progress: to connect and get an answer,
   * and between chunks of a transfer (time spent by the caller producing or consuming data does
   * not count). Default 30 s.
   */
  timeoutMs?: number;
  /**
   * Rewrites the DataNode address the NameNode redirects to, for clusters whose DataNode host
   * names do not resolve from the client (e.g. behind NAT or in containers).
   */
  mapDatanodeUrl?: (location: URL) => URL;
}

export type FileType = 'FILE' | 'DIRECTORY' | 'SYMLINK';

/** A FileStatus object as WebHDFS returns it (pathSuffix is '' for GETFILESTATUS). */
export interface FileStatus {
  pathSuffix: string;
  type: FileType;
  length: number;
  owner: string;
  group: string;
  /** Octal string, e.g. "644". */
  permission: string;
  accessTime: number;
  modificationTime: number;
  blockSize: number;
  replication: number;
  fileId?: number;
  childrenNum?: number;
  symlink?: string;
  storagePolicy?: number;
}

export interface ContentSummary {
  directoryCount: number;
  fileCount: number;
  length: number;
  quota: number;
  spaceConsumed: number;
  spaceQuota: number;
}

export type WebHdfsBody = Buffer | Uint8Array | AsyncIterable<Uint8Array> | Readable;

export interface CreateOptions {
  /** Replace an existing file (default false: an existing file is a FileAlreadyExistsException). */
  overwrite?: boolean;
  replication?: number;
  blockSize?: number;
  /** Octal string or number, e.g. '644'. */
  permission?: string | number;
  signal?: AbortSignal;
}

export interface OpenOptions {
  offset?: number;
  length?: number;
  signal?: AbortSignal;
}

/** Any WebHDFS failure: an HTTP error with HDFS's RemoteException, a refused connection, a timeout. */
export class WebHdfsError extends Error {
  /** The HDFS path the operation was on. */
  readonly path: string;
  /** The WebHDFS op (CREATE, OPEN, LISTSTATUS...). */
  readonly op: string;
  /** HTTP status; 0 when no HTTP answer came (connection refused, DNS failure, timeout). */
  readonly status: number;
  /** RemoteException.exception, e.g. 'FileNotFoundException'; for network failures the error code (ECONNREFUSED, ENOTFOUND, ETIMEDOUT). */
  readonly exception?: string;
  readonly javaClassName?: string;
  readonly remoteMessage?: string;
  /** host:port of the server that answered or could not be reached. */
  readonly host: string;

  constructor(fields: {
    path: string;
    op: string;
    status: number;
    host: string;
    exception?: string;
    javaClassName?: string;
    remoteMessage?: string;
    detail?: string;
    cause?: unknown;
  }) {
    const what = fields.remoteMessage
      ? `${fields.exception ?? 'RemoteException'}: ${fields.remoteMessage}`
      : (fields.detail ?? (fields.exception ? fields.exception : `HTTP ${fields.status}`));
    const status = fields.status ? ` (HTTP ${fields.status})` : '';
    super(
      `WebHDFS ${fields.op} ${fields.path} at ${fields.host} failed: ${what}${status}`,
      fields.cause === undefined ? undefined : { cause: fields.cause },
    );
    this.name = 'WebHdfsError';
    this.path = fields.path;
    this.op = fields.op;
    this.status = fields.status;
    this.host = fields.host;
    this.exception = fields.exception;
    this.javaClassName = fields.javaClassName;
    this.remoteMessage = fields.remoteMessage;
  }
}

/**
 * An abort signal that fires after `ms` of waiting on the network. arm() starts (or restarts) the
 * clock, disarm() stops it while the caller, not the network, is the slow side.
 */
class IdleDeadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  fired = false;
  readonly signal: AbortSignal;

  constructor(
    private readonly ms: number,
    external?: AbortSignal,
  ) {
    this.signal = external ? AbortSignal.any([this.controller.signal, external]) : this.controller.signal;
  }

  arm(): void {
    this.disarm();
    this.timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new Error(`no progress for ${this.ms} ms`));
    }, this.ms);
    this.timer.unref?.();
  }

  disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

interface RemoteExceptionBody {
  RemoteException?: { exception?: string; javaClassName?: string; message?: string };
}

type Params = Record<string, string | number | boolean | undefined>;

function hostOf(url: string | URL): string {
  const u = typeof url === 'string' ? new URL(url) : url;
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  return `${u.hostname}:${port}`;
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Uint8Array> {
  return typeof x === 'object' && x !== null && typeof (x as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function';
}

/** The system error code (ECONNREFUSED...) inside fetch's "fetch failed" TypeError, if any. */
function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 5 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The innermost message of an error chain ("connect ECONNREFUSED 127.0.0.1:1" rather than "fetch failed"). */
function networkDetail(err: unknown): string {
  let e: unknown = err;
  let last = String(err);
  for (let i = 0; i < 5 && e && typeof e === 'object'; i++) {
    if ((e as Error).message) last = (e as Error).message;
    e = (e as { cause?: unknown }).cause;
  }
  return last;
}

export class WebHdfsClient {
  readonly url: string;
  readonly user: string;
  readonly timeoutMs: number;
  private readonly mapDatanodeUrl?: (location: URL) => URL;

  constructor(opts: WebHdfsClientOptions) {
    const base = opts.url.replace(/\/+$/, '').replace(/\/webhdfs\/v1$/, '');
    if (!/^https?:\/\//.test(base))
      throw new TypeError(`WebHDFS url must start with http:// or https:// (got ${JSON.stringify(opts.url)})`);
    new URL(base); // a malformed URL is a programming error, thrown here rather than per request
    this.url = base;
    this.user = opts.user ?? (process.env.HADOOP_USER_NAME?.trim() || os.userInfo().username);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.mapDatanodeUrl = opts.mapDatanodeUrl;
  }

  // -------------------------------------------------------------------------------------------
  // Metadata
  // -------------------------------------------------------------------------------------------

  /** The entries of a directory (or the file itself, with pathSuffix '', for a file path). */
  async list(path: string, opts: { signal?: AbortSignal } = {}): Promise<FileStatus[]> {
    const j = await this.json<{ FileStatuses: { FileStatus: FileStatus[] } }>('GET', path, 'LISTSTATUS', {}, opts.signal);
    return j.FileStatuses.FileStatus;
  }

  async status(path: string, opts: { signal?: AbortSignal } = {}): Promise<FileStatus> {
    return (await this.json<{ FileStatus: FileStatus }>('GET', path, 'GETFILESTATUS', {}, opts.signal)).FileStatus;
  }

  /** False only for FileNotFoundException; any other failure is thrown. */
  async exists(path: string, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    try {
      await this.status(path, opts);
      return true;
    } catch (err) {
      if (err instanceof WebHdfsError && (err.exception === 'FileNotFoundException' || (err.status === 404 && !err.exception)))
        return false;
      throw err;
    }
  }

  /** Creates the directory and its parents; true on success (also when it already exists). */
  async mkdirs(path: string, opts: { permission?: string | number; signal?: AbortSignal } = {}): Promise<boolean> {
    return (await this.json<{ boolean: boolean }>('PUT', path, 'MKDIRS', { permission: permissionParam(opts.permission) }, opts.signal))
      .boolean;
  }

  /**
   * HDFS rename semantics: false (not an error) when the source is missing or the destination
   * exists as a file; into an existing directory, the source moves inside it.
   */
  async rename(from: string, to: string, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    return (await this.json<{ boolean: boolean }>('PUT', from, 'RENAME', { destination: absolutePath(to) }, opts.signal)).boolean;
  }

  /** True if something was deleted, false if the path did not exist. A non-empty directory needs recursive. */
  async delete(path: string, opts: { recursive?: boolean; signal?: AbortSignal } = {}): Promise<boolean> {
    return (await this.json<{ boolean: boolean }>('DELETE', path, 'DELETE', { recursive: opts.recursive ?? false }, opts.signal)).boolean;
  }

  async contentSummary(path: string, opts: { signal?: AbortSignal } = {}): Promise<ContentSummary> {
    return (await this.json<{ ContentSummary: ContentSummary }>('GET', path, 'GETCONTENTSUMMARY', {}, opts.signal)).ContentSummary;
  }

  // -------------------------------------------------------------------------------------------
  // Data
  // -------------------------------------------------------------------------------------------

  /** Writes a file: the NameNode picks a DataNode, the body is streamed to it once. */
  async create(path: string, body: WebHdfsBody, opts: CreateOptions = {}): Promise<void> {
    const params: Params = {
      overwrite: opts.overwrite ?? false,
      replication: opts.replication,
      blocksize: opts.blockSize,
      permission: permissionParam(opts.permission),
    };
    const location = await this.datanodeLocation('PUT', path, 'CREATE', params, opts.signal);
    await this.sendBody('PUT', path, 'CREATE', location, body, opts.signal);
  }

  /** Appends to an existing file. */
  async append(path: string, body: WebHdfsBody, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const location = await this.datanodeLocation('POST', path, 'APPEND', {}, opts.signal);
    await this.sendBody('POST', path, 'APPEND', location, body, opts.signal);
  }

  /**
   * Reads a file (or the byte range offset..offset+length) as a stream of Buffers. The returned
   * promise settles once the DataNode has answered, so a missing file rejects here, not mid-stream.
   */
  async open(path: string, opts: OpenOptions = {}): Promise<Readable> {
    const location = await this.datanodeLocation('GET', path, 'OPEN', { offset: opts.offset, length: opts.length }, opts.signal);
    const deadline = new IdleDeadline(this.timeoutMs, opts.signal);
    const host = hostOf(location);
    deadline.arm();
    const res = await this.fetchOrThrow(location, { method: 'GET', redirect: 'manual', signal: deadline.signal }, path, 'OPEN', deadline);
    if (!res.ok) {
      deadline.disarm();
      throw await this.httpError(res, path, 'OPEN', host);
    }
    if (!res.body) {
      deadline.disarm();
      return Readable.from([]);
    }
    const reader = res.body.getReader();
    const timeoutMs = this.timeoutMs;
    const describe = (err: unknown) =>
      new WebHdfsError({
        path,
        op: 'OPEN',
        status: 0,
        host,
        exception: deadline.fired ? 'ETIMEDOUT' : opts.signal?.aborted ? 'ABORTED' : networkCode(err),
        detail: deadline.fired ? `timed out: no data for ${timeoutMs} ms` : `reading from the DataNode: ${networkDetail(err)}`,
        cause: err,
      });
    // The idle clock runs only while we wait for the network, not while the consumer is busy.
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        for (;;) {
          deadline.arm();
          let next: ReadableStreamReadResult<Uint8Array>;
          try {
            next = await reader.read();
          } catch (err) {
            throw describe(err);
          } finally {
            deadline.disarm();
          }
          if (next.done) return;
          yield Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
        }
      } finally {
        deadline.disarm();
        // Early exit by the consumer: release the connection.
        reader.cancel().catch(() => {});
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  /** The whole file (or a range) in memory. */
  async readAll(path: string, opts: OpenOptions = {}): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of await this.open(path, opts)) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing
  // -------------------------------------------------------------------------------------------

  private opUrl(path: string, op: string, params: Params): string {
    const q = new URLSearchParams({ op, 'user.name': this.user });
    for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
    const encoded = absolutePath(path).split('/').map(encodeURIComponent).join('/');
    return `${this.url}/webhdfs/v1${encoded}?${q}`;
  }

  private async fetchOrThrow(url: string | URL, init: RequestInit, path: string, op: string, deadline: IdleDeadline): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (err) {
      deadline.disarm();
      const host = hostOf(url);
      if (deadline.fired) {
        throw new WebHdfsError({
          path,
          op,
          status: 0,
          host,
          exception: 'ETIMEDOUT',
          detail: `timed out after ${this.timeoutMs} ms without an answer from ${host}`,
          cause: err,
        });
      }
      if ((err as Error)?.name === 'AbortError' || init.signal?.aborted) {
        throw new WebHdfsError({ path, op, status: 0, host, exception: 'ABORTED', detail: 'aborted by the caller', cause: err });
      }
      const code = networkCode(err);
      const detail =
        code === 'ECONNREFUSED' ? `connection refused by ${host} (is HDFS running there?)` : `cannot reach ${host}: ${networkDetail(err)}`;
      throw new WebHdfsError({ path, op, status: 0, host, exception: code, detail, cause: err });
    }
  }

  private async httpError(res: Response, path: string, op: string, host: string): Promise<WebHdfsError> {
    let text = '';
    try {
      text = await res.text();
    } catch {
      /* no body */
    }
    return remoteError(res.status, res.statusText, text, path, op, host);
  }

  /** One request to the NameNode with a JSON answer. */
  private async json<T>(method: string, path: string, op: string, params: Params, signal?: AbortSignal): Promise<T> {
    const url = this.opUrl(path, op, params);
    const deadline = new IdleDeadline(this.timeoutMs, signal);
    deadline.arm();
    try {
      const res = await this.fetchOrThrow(url, { method, redirect: 'manual', signal: deadline.signal }, path, op, deadline);
      if (!res.ok) throw await this.httpError(res, path, op, hostOf(url));
      try {
        return (await res.json()) as T;
      } catch (err) {
        throw new WebHdfsError({
          path,
          op,
          status: res.status,
          host: hostOf(url),
          detail: deadline.fired ? 'timed out reading the answer' : `unreadable answer: ${networkDetail(err)}`,
          cause: err,
        });
      }
    } finally {
      deadline.disarm();
    }
  }

  /** Step one of CREATE/APPEND/OPEN: ask the NameNode which DataNode to use. */
  private async datanodeLocation(method: string, path: string, op: string, params: Params, signal?: AbortSignal): Promise<URL> {
    const url = this.opUrl(path, op, { ...params, noredirect: true });
    const deadline = new IdleDeadline(this.timeoutMs, signal);
    deadline.arm();
    try {
      const res = await this.fetchOrThrow(url, { method, redirect: 'manual', signal: deadline.signal }, path, op, deadline);
      let location: string | undefined;
      if (res.status >= 300 && res.status < 400) {
        // Servers that ignore noredirect (HttpFS, older NameNodes) answer with a plain redirect.
        location = res.headers.get('location') ?? undefined;
        await res.body?.cancel();
      } else if (res.ok) {
        const text = await res.text();
        try {
          location = (JSON.parse(text) as { Location?: string }).Location;
        } catch {
          /* not JSON */
        }
      } else {
        throw await this.httpError(res, path, op, hostOf(url));
      }
      if (!location) {
        throw new WebHdfsError({
          path,
          op,
          status: res.status,
          host: hostOf(url),
          detail: 'the NameNode named no DataNode to use (no Location in its answer)',
        });
      }
      const target = new URL(location, url);
      return this.mapDatanodeUrl ? this.mapDatanodeUrl(target) : target;
    } finally {
      deadline.disarm();
    }
  }

  /**
   * Step two of CREATE/APPEND: stream the body to the DataNode, once.
   *
   * This step uses node:http rather than fetch: the DataNode answers a write with an unsolicited
   * `100 Continue` before its `201 Created`, which fetch (undici) rejects as a "bad response".
   */
  private async sendBody(method: string, path: string, op: string, location: URL, body: WebHdfsBody, signal?: AbortSignal): Promise<void> {
    let source: AsyncIterable<Uint8Array | string>;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (body instanceof Uint8Array) {
      headers['content-length'] = String(body.byteLength);
      source = sliced(body, UPLOAD_SLICE);
    } else if (isAsyncIterable(body)) {
      source = body; // sent with chunked transfer encoding
    } else {
      throw new TypeError(`WebHDFS ${op} ${path}: body must be a Buffer, Uint8Array, AsyncIterable<Uint8Array> or Readable`);
    }
    const host = hostOf(location);
    const deadline = new IdleDeadline(this.timeoutMs, signal);
    const networkError = (err: unknown) => {
      if (deadline.fired) {
        return new WebHdfsError({
          path,
          op,
          status: 0,
          host,
          exception: 'ETIMEDOUT',
          detail: `timed out: no progress for ${this.timeoutMs} ms talking to the DataNode ${host}`,
          cause: err,
        });
      }
      if (signal?.aborted)
        return new WebHdfsError({ path, op, status: 0, host, exception: 'ABORTED', detail: 'aborted by the caller', cause: err });
      const code = networkCode(err);
      const detail = code === 'ECONNREFUSED' ? `connection refused by the DataNode ${host}` : `DataNode ${host}: ${networkDetail(err)}`;
      return new WebHdfsError({ path, op, status: 0, host, exception: code, detail, cause: err });
    };

    const transport = location.protocol === 'https:' ? https : http;
    deadline.arm();
    const req = transport.request(location, { method, headers, signal: deadline.signal });
    // Settles once the DataNode's final answer has been read in full (or the request failed).
    let settled = false;
    const answer = new Promise<{ status: number; statusText: string; location?: string; text: string }>((resolve, reject) => {
      req.once('error', (err) => {
        settled = true;
        reject(networkError(err));
      });
      req.once('response', (res) => {
        settled = true;
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => {
          deadline.arm();
          parts.push(d);
        });
        res.once('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            location: res.headers.location,
            text: Buffer.concat(parts).toString('utf8'),
          }),
        );
        res.once('error', (err) => reject(networkError(err)));
      });
    });
    answer.catch(() => {}); // awaited below; this only stops an early failure being "unhandled"

    const iterator = source[Symbol.asyncIterator]();
    try {
      for (;;) {
        // The clock stops while the caller's source produces the next chunk.
        deadline.disarm();
        let next: IteratorResult<Uint8Array | string>;
        try {
          next = await iterator.next();
        } catch (err) {
          req.destroy();
          throw err; // the caller's own error, passed through as it is
        }
        deadline.arm();
        if (next.done) break;
        if (settled) {
          // The DataNode answered early (an error) or the connection failed: stop reading the source.
          await iterator.return?.();
          break;
        }
        const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        if (chunk.byteLength === 0) continue;
        if (!req.write(chunk)) {
          await new Promise<void>((resolve) => {
            req.once('drain', resolve);
            answer.then(
              () => resolve(),
              () => resolve(),
            );
          });
        }
      }
      if (!settled) req.end();
      const res = await answer;
      if (res.status >= 300 && res.status < 400) {
        throw new WebHdfsError({
          path,
          op,
          status: res.status,
          host,
          detail: `the DataNode redirected again (to ${res.location}); refusing to re-send the body`,
        });
      }
      if (res.status < 200 || res.status >= 300) throw remoteError(res.status, res.statusText, res.text, path, op, host);
    } finally {
      deadline.disarm();
    }
  }
}

/** Bytes per write when uploading an in-memory body, so the idle clock sees progress. */
const UPLOAD_SLICE = 1024 * 1024;

async function* sliced(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, Math.min(i + size, data.byteLength));
}

/** A WebHdfsError from an HTTP error answer, with HDFS's RemoteException when it sent one. */
function remoteError(status: number, statusText: string, text: string, path: string, op: string, host: string): WebHdfsError {
  let remote: RemoteExceptionBody['RemoteException'];
  try {
    remote = (JSON.parse(text) as RemoteExceptionBody).RemoteException;
  } catch {
    /* not JSON */
  }
  return new WebHdfsError({
    path,
    op,
    status,
    host,
    exception: remote?.exception,
    javaClassName: remote?.javaClassName,
    remoteMessage: remote?.message,
    detail: remote ? undefined : `HTTP ${status} ${statusText}${text ? `: ${text.replace(/\s+/g, ' ').slice(0, 300)}` : ''}`,
  });
}

/**
 * The path part of an absolute path or an hdfs://, webhdfs:// URI (whose escapes are decoded),
 * refused with UnsafePathError when relative, with '.'/'..' segments or bad escapes.
 */
function absolutePath(p: string): string {
  const m = /^(?:hdfs|webhdfs|swebhdfs|viewfs):\/\/[^/]*(\/[^?#]*)?$/.exec(p);
  return m ? checkedHdfsPath(m[1] ?? '/', p, { decode: true }) : checkedHdfsPath(p);
}

function permissionParam(p: string | number | undefined): string | undefined {
  if (p === undefined) return undefined;
  return typeof p === 'number' ? p.toString(8) : p;
}
