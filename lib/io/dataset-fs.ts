/**
 * The little file-system surface the dataset writer and readers need, over the local disk or HDFS
 * (WebHDFS REST). Paths are absolute POSIX paths inside the file system; `resolveLocation` turns a
 * user's destination (`/data/x`, `file:///data/x`, `hdfs://nn:8020/data/x`, `webhdfs://nn:9870/x`)
 * into a file system + path.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { webhdfsFor } from '../platform/cluster-env';
import { checkedHdfsPath } from './hdfs-path';
import { WebHdfsClient, WebHdfsError } from './webhdfs';

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
/** A dataset file system on HDFS, through the project's WebHDFS client (lib/io/webhdfs.ts). */
export class WebHdfsFs implements DatasetFs {
  readonly kind = 'webhdfs' as const;
  private readonly client: WebHdfsClient;

  constructor(
    webhdfsUrl: string,
    private readonly opts: { user?: string; defaultFS?: string } = {},
  ) {
    this.client = new WebHdfsClient({ url: webhdfsUrl, user: opts.user });
  }

  uri(p: string): string {
    const fsUri = this.opts.defaultFS?.replace(/\/+$/, '');
    return fsUri ? `${fsUri}${p}` : `${this.client.url.replace(/^http/, 'webhdfs')}${p}`;
  }

  async stat(p: string): Promise<FsStat | undefined> {
    try {
      const st = await this.client.status(p);
      return { type: st.type === 'DIRECTORY' ? 'dir' : 'file', size: st.length };
    } catch (err) {
      if (err instanceof WebHdfsError && err.exception === 'FileNotFoundException') return undefined;
      throw err;
    }
  }

  async list(p: string): Promise<string[]> {
    return (await this.client.list(p)).map((s) => s.pathSuffix).sort();
  }

  async mkdirs(p: string): Promise<void> {
    await this.client.mkdirs(p);
  }

  async writeFile(p: string, data: Uint8Array): Promise<void> {
    await this.client.create(p, data, { overwrite: true });
  }

  readFile(p: string): Promise<Buffer> {
    return this.client.readAll(p);
  }

  async readRange(p: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const buf = await this.client.readAll(p, { offset, length, signal });
    if (buf.length !== length) throw new Error(`WebHDFS OPEN ${p}: short read (wanted ${length} bytes from ${offset}, got ${buf.length})`);
    return buf;
  }

  async rename(from: string, to: string): Promise<void> {
    if (!(await this.client.rename(from, to))) throw new Error(`WebHDFS RENAME ${from} -> ${to} was refused (does the destination exist?)`);
  }

  async remove(p: string): Promise<void> {
    await this.client.delete(p, { recursive: true });
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
  /**
   * WebHDFS endpoint (http://namenode:9870) for hdfs:// paths; default TFOS_WEBHDFS, else the
   * HADOOP_CONF_DIR (the user's or the running stack's) when the URI names its fs.defaultFS or no
   * host at all (hdfs:///p), else port 9870 of the URI's host.
   */
  webhdfs?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Resolves a dataset location: a local path or file:// URI → LocalFs; hdfs://host[:port]/p and
 * hdfs:///p → WebHDFS (endpoint from options / TFOS_WEBHDFS / HADOOP_CONF_DIR / http://host:9870); webhdfs://host:port/p and
 * http(s)://host:port/webhdfs/v1/p → that endpoint.
 */
export function resolveLocation(uri: string, opts: LocationOptions = {}): Location {
  const env = opts.env ?? process.env;
  if (uri.startsWith('file://')) return { fs: new LocalFs(), path: path.resolve(decodeURIComponent(new URL(uri).pathname)) };
  const m = /^(hdfs|webhdfs|https?):\/\/([^/]*)(\/.*)?$/.exec(uri);
  if (!m) return { fs: new LocalFs(), path: path.resolve(uri) };
  const [, scheme, authority, rest = '/'] = m;
  const p = checkedHdfsPath(rest, uri, { decode: true });
  if (scheme === 'hdfs') {
    const conf = webhdfsFor(authority, env);
    const endpoint =
      opts.webhdfs ||
      env.TFOS_WEBHDFS?.trim() ||
      conf?.webhdfs ||
      (authority ? `http://${authority.replace(/:\d+$/, '')}:9870` : undefined);
    if (!endpoint) {
      throw new Error(
        `${uri}: no NameNode: the URI names no host and there is no HADOOP_CONF_DIR with fs.defaultFS (set HADOOP_CONF_DIR, start \`tfos stack up\`, or write hdfs://HOST:PORT/...)`,
      );
    }
    const defaultFS = authority ? `hdfs://${authority}` : (conf?.defaultFS ?? env.TFOS_DEFAULT_FS?.trim() ?? 'hdfs://');
    return { fs: new WebHdfsFs(endpoint, { defaultFS }), path: p };
  }
  if (scheme === 'webhdfs') {
    return { fs: new WebHdfsFs(opts.webhdfs ?? `http://${authority}`, { defaultFS: env.TFOS_DEFAULT_FS }), path: p };
  }
  const wm = /^(.*?)\/webhdfs\/v1(\/.*)?$/.exec(uri);
  if (!wm) throw new Error(`${uri}: an http(s) location must be a WebHDFS URL (…/webhdfs/v1/path)`);
  return { fs: new WebHdfsFs(wm[1]), path: checkedHdfsPath(wm[2] ?? '/', uri, { decode: true }) };
}

/**
 * Moves a complete `staging` directory to `dest` without ever losing the old copy: an existing
 * DEST (`replace`) is first renamed aside, the staging directory renamed in, and only then the
 * old copy removed; if moving the new copy in fails, the old one is put back. A rename into an
 * existing directory nests it there (HDFS semantics), so DEST is checked to be absent right
 * before, and a staging directory that landed inside a DEST created meanwhile is moved back out.
 * A crash between the two renames leaves the old copy beside DEST as `.NAME.old-ID`.
 */
export async function commitDirectory(fs: DatasetFs, staging: string, dest: string, replace: boolean): Promise<void> {
  const parent = path.posix.dirname(dest);
  const aside = replace ? posixJoin(parent, `.${path.posix.basename(dest)}.old-${randomBytes(4).toString('hex')}`) : undefined;
  if (aside) await fs.rename(dest, aside);
  try {
    if (await fs.stat(dest)) throw new Error(`${fs.uri(dest)} appeared while the new copy was being written; it was left alone`);
    await fs.rename(staging, dest);
    const nested = posixJoin(dest, path.posix.basename(staging));
    if (await fs.stat(nested)) {
      await fs.rename(nested, staging);
      throw new Error(`${fs.uri(dest)} appeared while the new copy was being moved in; it was left alone`);
    }
  } catch (err) {
    if (aside && !(await fs.stat(dest).catch(() => undefined))) await fs.rename(aside, dest);
    throw err;
  }
  if (aside) await fs.remove(aside);
}

/** True when a local directory exists (sync helper for CLIs). */
export function localDirExists(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
