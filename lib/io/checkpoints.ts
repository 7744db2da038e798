/**
 * Training checkpoints on local disk or HDFS (any location `resolveLocation` takes), written so
 * that a crash at any moment never leaves a checkpoint that loads:
 *
 *   DIR/.ckpt-00001200.tmp-<random>/   being written: tensors.bin, then checkpoint.json (last)
 *   DIR/ckpt-00001200/                 renamed into place once both files are complete
 *
 * A reader only considers `ckpt-<step>` directories, and only one whose checkpoint.json parses and
 * whose tensors.bin has the recorded size and SHA-256; otherwise it falls back to the next older one.
 * The writer keeps the newest `keep` checkpoints and removes older ones and its own staging leftovers.
 *
 * What a checkpoint holds is up to the caller: named groups of tensors (model weights, optimizer
 * slots) as raw little-endian bytes, plus a JSON `state` (step, data position, history).
 */
import { createHash, randomBytes } from 'node:crypto';
import { DatasetFs, LocationOptions, posixJoin, resolveLocation } from './dataset-fs';

export const CHECKPOINT_FORMAT = 'tfos-checkpoint';
export const CHECKPOINT_VERSION = 1;
const NAME = /^ckpt-(\d+)$/;
const STAGING = /^\.ckpt-\d+\.tmp-[0-9a-f]+$/;

export type TensorDtype = 'float32' | 'int32';

/** One tensor's values, host side. */
export interface HostTensor {
  name: string;
  shape: number[];
  dtype: TensorDtype;
  values: Float32Array | Int32Array;
}

interface TensorEntry {
  name: string;
  shape: number[];
  dtype: TensorDtype;
  /** Byte offset in tensors.bin. */
  offset: number;
  bytes: number;
}

interface Manifest {
  format: string;
  version: number;
  step: number;
  createdAt: string;
  bytes: number;
  sha256: string;
  groups: Record<string, TensorEntry[]>;
  state: unknown;
}

export interface Checkpoint<S = unknown> {
  step: number;
  /** URI of the checkpoint directory (for messages). */
  uri: string;
  groups: Record<string, HostTensor[]>;
  state: S;
}

export class CheckpointError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export interface CheckpointsOptions extends LocationOptions {
  /** Checkpoints kept by save() (newest first); default 5. */
  keep?: number;
  /** Told about every checkpoint skipped as incomplete or corrupt. */
  onSkip?: (uri: string, why: string) => void;
}

export class Checkpoints {
  readonly fs: DatasetFs;
  readonly dir: string;
  readonly keep: number;
  private readonly onSkip: (uri: string, why: string) => void;

  constructor(uri: string, opts: CheckpointsOptions = {}) {
    const loc = resolveLocation(uri, opts);
    this.fs = loc.fs;
    this.dir = loc.path;
    this.keep = opts.keep ?? 5;
    if (!Number.isInteger(this.keep) || this.keep < 1) throw new RangeError(`Checkpoints: keep must be an integer >= 1, got ${opts.keep}`);
    this.onSkip = opts.onSkip ?? (() => undefined);
  }

  /** URI of the directory (file:///… or hdfs://…). */
  get uri(): string {
    return this.fs.uri(this.dir);
  }

  /** Steps of the checkpoint directories present (complete or not), newest first. */
  async steps(): Promise<number[]> {
    const st = await this.fs.stat(this.dir);
    if (!st) return [];
    if (st.type !== 'dir') throw new CheckpointError(`checkpoint location ${this.uri} is a file, not a directory`, this.uri);
    return (await this.fs.list(this.dir))
      .map((n) => NAME.exec(n))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => Number(m[1]))
      .sort((a, b) => b - a);
  }

  /** Writes a checkpoint of `step` atomically; then prunes to the newest `keep`. Resolves to its URI. */
  async save(step: number, groups: Record<string, HostTensor[]>, state: unknown = {}): Promise<string> {
    if (!Number.isInteger(step) || step < 0) throw new RangeError(`checkpoint step must be an integer >= 0, got ${step}`);
    const entries: Record<string, TensorEntry[]> = {};
    const chunks: Buffer[] = [];
    let offset = 0;
    for (const [group, tensors] of Object.entries(groups)) {
      entries[group] = tensors.map((t) => {
        const expected = t.shape.reduce((a, b) => a * b, 1);
        if (t.values.length !== expected)
          throw new CheckpointError(`tensor '${t.name}' (${group}) has ${t.values.length} values for shape [${t.shape}]`, this.uri);
        const bytes = Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength);
        chunks.push(bytes);
        const e: TensorEntry = { name: t.name, shape: t.shape.slice(), dtype: t.dtype, offset, bytes: bytes.length };
        offset += bytes.length;
        return e;
      });
    }
    const data = Buffer.concat(chunks);
    const manifest: Manifest = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      step,
      createdAt: new Date().toISOString(),
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      groups: entries,
      state,
    };
    const name = checkpointName(step);
    const staging = posixJoin(this.dir, `.${name}.tmp-${randomBytes(4).toString('hex')}`);
    const final = posixJoin(this.dir, name);
    try {
      // Inside the try: a directory that refuses the staging folder (no permission, quota full)
      // fails with the checkpoint named, like any later step.
      await this.fs.mkdirs(staging);
      await this.fs.writeFile(posixJoin(staging, 'tensors.bin'), data);
      // The manifest goes last: a directory without it is incomplete whatever else it holds.
      await this.fs.writeFile(posixJoin(staging, 'checkpoint.json'), Buffer.from(JSON.stringify(manifest)));
      if (await this.fs.stat(final)) await this.fs.remove(final);
      await this.fs.rename(staging, final);
    } catch (err) {
      await this.fs.remove(staging).catch(() => undefined);
      throw new CheckpointError(`writing checkpoint ${this.fs.uri(final)} failed: ${(err as Error).message}`, this.fs.uri(final));
    }
    await this.prune();
    return this.fs.uri(final);
  }

  /** Removes all but the newest `keep` checkpoints, and staging directories of earlier saves. */
  private async prune(): Promise<void> {
    const names = await this.fs.list(this.dir);
    for (const n of names.filter((x) => STAGING.test(x))) await this.fs.remove(posixJoin(this.dir, n)).catch(() => undefined);
    for (const step of (await this.steps()).slice(this.keep))
      await this.fs.remove(posixJoin(this.dir, checkpointName(step))).catch(() => undefined);
  }

  /** The newest checkpoint that is complete and intact, or undefined when there is none. */
  async latest<S = unknown>(): Promise<Checkpoint<S> | undefined> {
    for (const step of await this.steps()) {
      const cp = await this.read<S>(step).catch((err: Error) => {
        this.onSkip(this.fs.uri(posixJoin(this.dir, checkpointName(step))), err.message);
        return undefined;
      });
      if (cp) return cp;
    }
    return undefined;
  }

  /** Reads and verifies the checkpoint of `step`; rejects with a CheckpointError naming what is wrong. */
  async read<S = unknown>(step: number): Promise<Checkpoint<S>> {
    const dir = posixJoin(this.dir, checkpointName(step));
    const uri = this.fs.uri(dir);
    const fail = (why: string) => new CheckpointError(`checkpoint ${uri} ${why}`, uri);
    let manifest: Manifest;
    try {
      manifest = JSON.parse((await this.fs.readFile(posixJoin(dir, 'checkpoint.json'))).toString('utf8')) as Manifest;
    } catch (err) {
      throw fail(`has no readable checkpoint.json (${(err as Error).message})`);
    }
    if (manifest.format !== CHECKPOINT_FORMAT || manifest.version !== CHECKPOINT_VERSION)
      throw fail(`is not a ${CHECKPOINT_FORMAT} v${CHECKPOINT_VERSION} (format ${manifest.format} v${manifest.version})`);
    if (manifest.step !== step) throw fail(`records step ${manifest.step}, its name says ${step}`);
    let data: Buffer;
    try {
      data = await this.fs.readFile(posixJoin(dir, 'tensors.bin'));
    } catch (err) {
      throw fail(`has no readable tensors.bin (${(err as Error).message})`);
    }
    if (data.length !== manifest.bytes) throw fail(`tensors.bin has ${data.length} bytes, the manifest says ${manifest.bytes}`);
    if (createHash('sha256').update(data).digest('hex') !== manifest.sha256) throw fail('tensors.bin does not match its SHA-256 (corrupt)');
    const groups: Record<string, HostTensor[]> = {};
    for (const [group, list] of Object.entries(manifest.groups)) {
      groups[group] = list.map((e) => {
        // Copy out: typed-array views need aligned offsets.
        const bytes = new Uint8Array(data.subarray(e.offset, e.offset + e.bytes));
        const values = e.dtype === 'int32' ? new Int32Array(bytes.buffer) : new Float32Array(bytes.buffer);
        return { name: e.name, shape: e.shape, dtype: e.dtype, values };
      });
    }
    return { step, uri, groups, state: manifest.state as S };
  }
}

export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(8, '0')}`;
}
