/**
 * A typed WebHDFS client on Node's fetch (no dependencies).
 *
 * CREATE, APPEND and OPEN are two requests: the NameNode answers 307 with the DataNode's URL,
 * and the body (or the read) goes there. fetch's own redirect handling would re-send a streamed
 * body, which cannot be replayed, so redirects are followed by hand. Every error names the
 * operation, the path and the server, with HDFS's RemoteException class and message.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { Readable } from 'node:stream';

export interface FileStatus {
  pathSuffix: string;
  type: 'FILE' | 'DIRECTORY' | 'SYMLINK';
  length: number;
  owner: string;
  group: string;
  permission: string;
  modificationTime: number;
  accessTime: number;
  replication: number;
  blockSize: number;
}

export interface WebHdfsOptions {
  /** NameNode HTTP address, e.g. http://127.0.0.1:9870 */
  url: string;
  /** HDFS user (simple auth); default $USER. */
  user?: string;
  /** Timeout of each request without a streamed body (ms, default 60 s). */
  timeoutMs?: number;
}

export type Body = Buffer | Uint8Array | string | AsyncIterable<Uint8Array> | Readable;

export class WebHdfsError extends Error {
  constructor(
    readonly op: string,
    readonly path: string,
    readonly status: number,
    /** RemoteException.exception, e.g. FileNotFoundException; '' when the server sent none. */
    readonly exception: string,
    readonly javaClassName: string,
    readonly remoteMessage: string,
    server: string,
  ) {
    super(`WebHDFS ${op} ${path} on ${server} failed: ${exception ? `${exception}: ` : ''}${remoteMessage || `HTTP ${status}`}`);
    this.name = 'WebHdfsError';
  }
}

export class WebHdfsClient {
  readonly url: string;
  readonly user: string;
  private readonly timeoutMs: number;

  constructor(opts: WebHdfsOptions) {
    if (!/^https?:\/\//.test(opts.url)) throw new Error(`WebHDFS url must start with http:// or https://, got '${opts.url}'`);
    this.url = opts.url.replace(/\/+$/, '');
    this.user = opts.user ?? process.env.HADOOP_USER_NAME ?? process.env.USER ?? 'root';
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  private endpoint(p: string, op: string, params: Record<string, string | number | boolean | undefined> = {}): string {
    if (!p.startsWith('/')) throw new Error(`WebHDFS paths must be absolute, got '${p}'`);
    const q = new URLSearchParams({ op, 'user.name': this.user });
    for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
    return `${this.url}/webhdfs/v1${encodeURI(p)}?${q}`;
  }

  private async send(op: string, p: string, url: string, init: RequestInit & { duplex?: 'half' }, timeout = true): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, redirect: 'manual', signal: timeout ? AbortSignal.timeout(this.timeoutMs) : init.signal });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const host = new URL(url).host;
      const code = e.name === 'TimeoutError' ? 'ETIMEDOUT' : (e.cause?.code ?? 'ECONNERROR');
      const why = e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (e.cause?.message ?? e.message);
      // status 0: no HTTP answer at all; `exception` carries the network error code.
      throw new WebHdfsError(op, p, 0, code, '', `cannot reach ${host}: ${why}`, host);
    }
    if (res.status >= 400) throw await this.error(op, p, res, url);
    return res;
  }

  private async error(op: string, p: string, res: Response, url: string): Promise<WebHdfsError> {
    const text = await res.text().catch(() => '');
    let exception = '';
    let javaClassName = '';
    let message = text.slice(0, 500);
    try {
      const r = (JSON.parse(text) as { RemoteException?: { exception?: string; javaClassName?: string; message?: string } }).RemoteException;
      if (r) {
        exception = r.exception ?? '';
        javaClassName = r.javaClassName ?? '';
        message = r.message ?? '';
      }
    } catch {
      /* not JSON */
    }
    return new WebHdfsError(op, p, res.status, exception, javaClassName, message, new URL(url).host);
  }

  private async json<T>(op: string, p: string, method: string, params?: Record<string, string | number | boolean | undefined>): Promise<T> {
    const res = await this.send(op, p, this.endpoint(p, op, params), { method });
    return (await res.json()) as T;
  }

  async status(p: string): Promise<FileStatus> {
    return (await this.json<{ FileStatus: FileStatus }>('GETFILESTATUS', p, 'GET')).FileStatus;
  }

  async exists(p: string): Promise<boolean> {
    try {
      await this.status(p);
      return true;
    } catch (err) {
      if (err instanceof WebHdfsError && err.exception === 'FileNotFoundException') return false;
      throw err;
    }
  }

  async list(p: string): Promise<FileStatus[]> {
    return (await this.json<{ FileStatuses: { FileStatus: FileStatus[] } }>('LISTSTATUS', p, 'GET')).FileStatuses.FileStatus;
  }

  async mkdirs(p: string, permission?: string): Promise<boolean> {
    return (await this.json<{ boolean: boolean }>('MKDIRS', p, 'PUT', { permission })).boolean;
  }

  async delete(p: string, opts: { recursive?: boolean } = {}): Promise<boolean> {
    return (await this.json<{ boolean: boolean }>('DELETE', p, 'DELETE', { recursive: opts.recursive ?? false })).boolean;
  }

  /** Renames; false when HDFS refuses (e.g. the target exists), as HDFS itself reports it. */
  async rename(from: string, to: string): Promise<boolean> {
    return (await this.json<{ boolean: boolean }>('RENAME', from, 'PUT', { destination: to })).boolean;
  }

  async contentSummary(p: string): Promise<{ length: number; fileCount: number; directoryCount: number; spaceConsumed: number }> {
    return (await this.json<{ ContentSummary: { length: number; fileCount: number; directoryCount: number; spaceConsumed: number } }>('GETCONTENTSUMMARY', p, 'GET')).ContentSummary;
  }

  async create(p: string, body: Body, opts: { overwrite?: boolean; replication?: number; blockSize?: number; permission?: string } = {}): Promise<void> {
    await this.upload('CREATE', p, 'PUT', body, { overwrite: opts.overwrite ?? false, replication: opts.replication, blocksize: opts.blockSize, permission: opts.permission });
  }

  async append(p: string, body: Body): Promise<void> {
    await this.upload('APPEND', p, 'POST', body, {});
  }

  private async upload(op: string, p: string, method: string, body: Body, params: Record<string, string | number | boolean | undefined>): Promise<void> {
    // Step 1: the NameNode says which DataNode takes the data (no body sent yet).
    const first = await this.send(op, p, this.endpoint(p, op, params), { method });
    const location = first.headers.get('location');
    await first.body?.cancel();
    if (!location) throw new WebHdfsError(op, p, first.status, '', '', 'the NameNode sent no DataNode location', new URL(this.url).host);
    // Step 2: stream the body to the DataNode, exactly once. node:http rather than fetch: the
    // DataNode answers with an unsolicited "100 Continue", which fetch (undici) rejects.
    const data = typeof body === 'string' ? Buffer.from(body) : body;
    await this.putToDataNode(op, p, location, method, data);
  }

  private putToDataNode(op: string, p: string, location: string, method: string, data: Uint8Array | AsyncIterable<Uint8Array> | Readable): Promise<void> {
    const target = new URL(location);
    const mod = target.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(target, { method, headers: { 'content-type': 'application/octet-stream', ...(data instanceof Uint8Array ? { 'content-length': data.byteLength } : { 'transfer-encoding': 'chunked' }) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status < 400) return resolve();
          const text = Buffer.concat(chunks).toString('utf8');
          let exception = '';
          let javaClassName = '';
          let message = text.slice(0, 500);
          try {
            const r = (JSON.parse(text) as { RemoteException?: { exception?: string; javaClassName?: string; message?: string } }).RemoteException;
            if (r) [exception, javaClassName, message] = [r.exception ?? '', r.javaClassName ?? '', r.message ?? ''];
          } catch {
            /* not JSON */
          }
          reject(new WebHdfsError(op, p, status, exception, javaClassName, message, target.host));
        });
        res.on('error', reject);
      });
      req.on('error', (err: NodeJS.ErrnoException) => reject(new WebHdfsError(op, p, 0, err.code ?? 'ECONNERROR', '', `cannot reach DataNode ${target.host}: ${err.message}`, target.host)));
      if (data instanceof Uint8Array) {
        req.end(data);
      } else {
        const source = data instanceof Readable ? data : Readable.from(data);
        source.on('error', (err) => req.destroy(err));
        source.pipe(req);
      }
    });
  }

  /** Reads a file (or `length` bytes from `offset`) as a stream. */
  async open(p: string, opts: { offset?: number; length?: number } = {}): Promise<Readable> {
    const first = await this.send('OPEN', p, this.endpoint(p, 'OPEN', { offset: opts.offset, length: opts.length }), { method: 'GET' });
    const location = first.headers.get('location');
    let res = first;
    if (location) {
      await first.body?.cancel();
      res = await this.send('OPEN', p, location, { method: 'GET' }, false);
    }
    if (!res.body) return Readable.from([]);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }

  async readAll(p: string, opts: { offset?: number; length?: number } = {}): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await this.open(p, opts)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
}
