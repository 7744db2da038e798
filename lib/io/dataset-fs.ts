/**
 * The little file-system surface the dataset writer and readers need, over the local disk or HDFS
 * (WebHDFS REST). Paths are absolute POSIX paths inside the file system; `resolveLocation` turns a
 * user's destination (`/data/x`, `file:///data/x`, `hdfs://nn:8020/data/x`, `webhdfs://nn:9870/x`)
 * into a file system + path.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { WebHdfsClient } from './webhdfs';

export interface FsStat {
  type: 'file' | 'dir';
  size: number;
}

export interface DatasetFs {
  readonly kind: 'local' | 'webhdfs';
  /** A URI for messages and manifests (file:///… or hdfs://…). */
  uri(p: string): string;
  stat(p: string): Promise<FsStat | undefined>;
  /** Names (not paths) of the entries of a directory. */
  list(p: string): Promise<string[]>;
  mkdirs(p: string): Promise<void>;
  /** Creates or replaces a file with the given bytes. */
  writeFile(p: string, data: Uint8Array): Promise<void>;
  readFile(p: string): Promise<Buffer>;
  /** `length` bytes from `offset`, one ranged read (an error if the file is shorter). */
  readRange(p: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  /** Recursive delete; no error when absent. */
  remove(p: string): Promise<void>;
}

export const posixJoin = (...parts: string[]) => path.posix.join(...parts);

// ---------------------------------------------------------------------------------------------
// Local
// ---------------------------------------------------------------------------------------------

export class LocalFs implements DatasetFs {
  readonly kind = 'local' as const;
  uri(p: string): string {
    return `file://${path.resolve(p)}`;
  }
  async stat(p: string): Promise<FsStat | undefined> {
    try {
      const st = await fsp.stat(p);
      return { type: st.isDirectory() ? 'dir' : 'file', size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
  async list(p: string): Promise<string[]> {
    return (await fsp.readdir(p)).sort();
  }
  async mkdirs(p: string): Promise<void> {
    await fsp.mkdir(p, { recursive: true });
  }
  async writeFile(p: string, data: Uint8Array): Promise<void> {
    await fsp.writeFile(p, data);
  }
  async readFile(p: string): Promise<Buffer> {
    return fsp.readFile(p);
  }
  async readRange(p: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted();
    const fh = await fsp.open(p, 'r');
    try {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) throw new Error(`${p}: short read at byte ${offset + got} (wanted ${length} bytes from ${offset})`);
        got += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  }
  async rename(from: string, to: string): Promise<void> {
    await fsp.rename(from, to);
  }
  async remove(p: string): Promise<void> {
    await fsp.rm(p, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// WebHDFS
// ---------------------------------------------------------------------------------------------

/** Minimal WebHDFS REST client (GETFILESTATUS, LISTSTATUS, MKDIRS, CREATE, OPEN, RENAME, DELETE). */
export class WebHdfsFs implements DatasetFs {
  readonly kind = 'webhdfs' as const;
  private readonly base: string;
  constructor(
    webhdfsUrl: string,
    private readonly opts: { user?: string; defaultFS?: string } = {},
  ) {
    this.base = webhdfsUrl.replace(/\/+$/, '').replace(/\/webhdfs\/v1$/, '');
  }

  uri(p: string): string {
    const fsUri = this.opts.defaultFS?.replace(/\/+$/, '');
    return fsUri ? `${fsUri}${p}` : `${this.base.replace(/^http/, 'webhdfs')}${p}`;
  }

  private url(p: string, op: string, params: Record<string, string | number | boolean> = {}): string {
    const q = new URLSearchParams({ op, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])) });
    const user = this.opts.user ?? process.env.HADOOP_USER_NAME ?? process.env.USER;
    if (user) q.set('user.name', user);
    const encoded = p.split('/').map(encodeURIComponent).join('/');
    return `${this.base}/webhdfs/v1${encoded.startsWith('/') ? encoded : '/' + encoded}?${q}`;
  }

  private async call(method: string, url: string, init: RequestInit = {}, what = ''): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(url, { method, ...init });
    } catch (err) {
      throw new Error(`WebHDFS ${method} ${what || url} failed: ${(err as Error).message} (is HDFS up at ${this.base}?)`);
    }
    return res;
  }

  private async fail(res: Response, what: string): Promise<never> {
    let detail = '';
    try {
      const body = await res.text();
      const j = JSON.parse(body) as { RemoteException?: { message?: string; exception?: string } };
      detail = j.RemoteException ? `${j.RemoteException.exception}: ${j.RemoteException.message}` : body.slice(0, 300);
    } catch {
      /* no body */
    }
    throw new Error(`WebHDFS ${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}`);
  }

  async stat(p: string): Promise<FsStat | undefined> {
    const res = await this.call('GET', this.url(p, 'GETFILESTATUS'));
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) return this.fail(res, `GETFILESTATUS ${p}`);
    const j = (await res.json()) as { FileStatus: { type: string; length: number } };
    return { type: j.FileStatus.type === 'DIRECTORY' ? 'dir' : 'file', size: j.FileStatus.length };
  }

  async list(p: string): Promise<string[]> {
    const res = await this.call('GET', this.url(p, 'LISTSTATUS'));
    if (!res.ok) return this.fail(res, `LISTSTATUS ${p}`);
    const j = (await res.json()) as { FileStatuses: { FileStatus: { pathSuffix: string }[] } };
    return j.FileStatuses.FileStatus.map((s) => s.pathSuffix).sort();
  }

  async mkdirs(p: string): Promise<void> {
    const res = await this.call('PUT', this.url(p, 'MKDIRS'));
    if (!res.ok) return this.fail(res, `MKDIRS ${p}`);
    await res.body?.cancel();
  }

  async writeFile(p: string, data: Uint8Array): Promise<void> {
    // The WebHDFS client does the two-step CREATE (and copes with the DataNode's 100-continue).
    const client = new WebHdfsClient({ url: this.base, user: this.opts.user ?? process.env.HADOOP_USER_NAME ?? process.env.USER });
    await client.create(p, data, { overwrite: true });
  }

  async readFile(p: string): Promise<Buffer> {
    const res = await this.call('GET', this.url(p, 'OPEN'));
    if (!res.ok) return this.fail(res, `OPEN ${p}`);
    return Buffer.from(await res.arrayBuffer());
  }

  async readRange(p: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const res = await this.call('GET', this.url(p, 'OPEN', { offset, length }), { signal });
    if (!res.ok) return this.fail(res, `OPEN ${p} [${offset}, +${length})`);
    const buf = Buffer.from(await res.arrayBuffer());
    if (buf.length !== length) throw new Error(`WebHDFS OPEN ${p}: short read (wanted ${length} bytes from ${offset}, got ${buf.length})`);
    return buf;
  }

  async rename(from: string, to: string): Promise<void> {
    const res = await this.call('PUT', this.url(from, 'RENAME', { destination: to }));
    if (!res.ok) return this.fail(res, `RENAME ${from} -> ${to}`);
    const j = (await res.json()) as { boolean?: boolean };
    if (j.boolean === false) throw new Error(`WebHDFS RENAME ${from} -> ${to} was refused (does the destination exist?)`);
  }

  async remove(p: string): Promise<void> {
    const res = await this.call('DELETE', this.url(p, 'DELETE', { recursive: true }));
    if (!res.ok && res.status !== 404) return this.fail(res, `DELETE ${p}`);
    await res.body?.cancel();
  }
}

// ---------------------------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------------------------

export interface Location {
  fs: DatasetFs;
  /** Absolute path inside `fs`. */
  path: string;
}

export interface LocationOptions {
  /** WebHDFS endpoint (http://namenode:9870) for hdfs:// paths; default TFOS_WEBHDFS, else port 9870 of the namenode host. */
  webhdfs?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Resolves a dataset location: a local path or file:// URI → LocalFs; hdfs://host[:port]/p →
 * WebHDFS (endpoint from options / TFOS_WEBHDFS / http://host:9870); webhdfs://host:port/p and
 * http(s)://host:port/webhdfs/v1/p → that endpoint.
 */
export function resolveLocation(uri: string, opts: LocationOptions = {}): Location {
  const env = opts.env ?? process.env;
  if (uri.startsWith('file://')) return { fs: new LocalFs(), path: path.resolve(decodeURIComponent(new URL(uri).pathname)) };
  const m = /^(hdfs|webhdfs|https?):\/\/([^/]*)(\/.*)?$/.exec(uri);
  if (!m) return { fs: new LocalFs(), path: path.resolve(uri) };
  const [, scheme, authority, rest = '/'] = m;
  const p = path.posix.normalize(decodeURIComponent(rest));
  if (scheme === 'hdfs') {
    const endpoint = opts.webhdfs || env.TFOS_WEBHDFS?.trim() || (authority ? `http://${authority.replace(/:\d+$/, '')}:9870` : undefined);
    if (!endpoint) throw new Error(`${uri}: no namenode host; give a WebHDFS endpoint (--webhdfs or TFOS_WEBHDFS)`);
    return { fs: new WebHdfsFs(endpoint, { defaultFS: `hdfs://${authority}` }), path: p };
  }
  if (scheme === 'webhdfs') {
    return { fs: new WebHdfsFs(opts.webhdfs ?? `http://${authority}`, { defaultFS: env.TFOS_DEFAULT_FS }), path: p };
  }
  const wm = /^(.*?)\/webhdfs\/v1(\/.*)?$/.exec(uri);
  if (!wm) throw new Error(`${uri}: an http(s) location must be a WebHDFS URL (…/webhdfs/v1/path)`);
  return { fs: new WebHdfsFs(wm[1]), path: path.posix.normalize(decodeURIComponent(wm[2] ?? '/')) };
}

/** True when a local directory exists (sync helper for CLIs). */
export function localDirExists(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
