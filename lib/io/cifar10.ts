/**
 * CIFAR-10, binary version: reading the batch files (plain `.bin` or `.bin.xz`, streamed through the
 * `xz` command), validating them record by record, and generating CIFAR-format data for tests and
 * for machines without the real files.
 *
 * A record is 3,073 bytes: one label byte (0–9), then 3,072 pixel bytes — the 1,024 red values,
 * then green, then blue, each plane a 32×32 image in row-major order (CHW). A batch file holds
 * 10,000 records (30,730,000 bytes); training is data_batch_1..5, test is test_batch.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mulberry32 } from './random';

export const CIFAR = {
  height: 32,
  width: 32,
  channels: 3,
  imageBytes: 3072,
  recordBytes: 3073,
  numClasses: 10,
  recordsPerFile: 10_000,
  fileBytes: 30_730_000,
  trainFiles: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  testFiles: ['test_batch.bin'],
  classes: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
} as const;

export type Split = 'train' | 'test';

/** One CIFAR batch file (or a generated stand-in) as a stream of bytes of known length. */
export interface CifarSource {
  /** Canonical name of the decompressed file, e.g. `data_batch_3.bin` (used in errors). */
  name: string;
  /** What is actually read, for messages: a path, or `generated(seed=…)`. */
  origin: string;
  /** Decompressed size in bytes, known before reading (stat, `xz --robot -l`, or computed). */
  bytes: number;
  /** SHA-256 of the decompressed bytes from SHA256SUMS, checked after reading when present. */
  expectedSha256?: string;
  /** The decompressed bytes, in order. Aborting the signal stops the read (and kills `xz`). */
  open(signal?: AbortSignal): AsyncIterable<Buffer>;
}

export interface CifarSourceSet {
  train: CifarSource[];
  test: CifarSource[];
  classes: string[];
  /** 'files' when read from a directory, 'generated' for a synthetic set. */
  kind: 'files' | 'generated';
  description: string;
}

/** Error in the input data; the message names the file, record and byte offset. */
export class CifarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CifarFormatError';
  }
}

// ---------------------------------------------------------------------------------------------
// Finding and opening the real files
// ---------------------------------------------------------------------------------------------

let xzChecked: string | undefined;

/** The `xz` executable, or an error saying how to get one (checked once). */
export function xzCommand(): string {
  if (xzChecked) return xzChecked;
  const cmd = process.env.TFOS_XZ?.trim() || 'xz';
  const res = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    throw new Error(
      `'${cmd}' is needed to read .xz files but did not run (${res.error?.message ?? res.stderr}); install xz-utils or decompress the files with 'xz -dk'`,
    );
  }
  xzChecked = cmd;
  return cmd;
}

/** Uncompressed size of an .xz file from its index (fast: `xz --robot --list`). */
export function xzUncompressedSize(file: string): number {
  const res = spawnSync(xzCommand(), ['--robot', '--list', '--', file], { encoding: 'utf8' });
  if (res.status !== 0) throw new CifarFormatError(`${path.basename(file)}: not a valid .xz file (${(res.stderr || '').trim()})`);
  const totals = res.stdout.split('\n').find((l) => l.startsWith('totals\t'));
  const size = totals ? Number(totals.split('\t')[4]) : NaN;
  if (!Number.isFinite(size)) throw new CifarFormatError(`${path.basename(file)}: could not read the uncompressed size from 'xz --list'`);
  return size;
}

/** Streams a file, decompressing `.xz` through the xz command; errors name the file. */
export async function* openFileBytes(file: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  if (!file.endsWith('.xz')) {
    const stream = fs.createReadStream(file, { highWaterMark: 1 << 20, signal });
    for await (const chunk of stream) yield chunk as Buffer;
    return;
  }
  const child = spawn(xzCommand(), ['-dc', '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 4000) stderr += d;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
  const onAbort = () => child.kill('SIGKILL');
  signal?.addEventListener('abort', onAbort, { once: true });
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const code = await exited;
    finished = true;
    if (code !== 0) {
      throw new CifarFormatError(`${path.basename(file)}: xz failed (exit ${code}): ${stderr.trim() || 'no message'}`);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!finished) child.kill('SIGKILL');
  }
}

/** Reads SHA256SUMS (`<hex>  <name>` lines) into a map name → hex; empty when absent. */
export function readSha256Sums(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, 'SHA256SUMS'), 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$/.exec(line);
    if (m) out.set(path.basename(m[2]), m[1].toLowerCase());
  }
  return out;
}

/** Class names from batches.meta.txt (one per line), or the standard ten. */
export function readClassNames(dir: string | undefined): string[] {
  if (dir) {
    try {
      const names = fs
        .readFileSync(path.join(dir, 'batches.meta.txt'), 'utf8')
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
      if (names.length === CIFAR.numClasses) return names;
    } catch {
      /* fall through */
    }
  }
  return [...CIFAR.classes];
}

/** A batch file in `dir`: `NAME` (plain) preferred over `NAME.xz`; undefined when neither exists. */
export function fileSource(dir: string, name: string, sums?: Map<string, string>): CifarSource | undefined {
  const plain = path.join(dir, name);
  const xz = `${plain}.xz`;
  const expectedSha256 = sums?.get(name);
  if (fs.existsSync(plain)) {
    return { name, origin: plain, bytes: fs.statSync(plain).size, expectedSha256, open: (signal) => openFileBytes(plain, signal) };
  }
  if (fs.existsSync(xz)) {
    return { name, origin: xz, bytes: xzUncompressedSize(xz), expectedSha256, open: (signal) => openFileBytes(xz, signal) };
  }
  return undefined;
}

/**
 * The CIFAR-10 files of a directory, or undefined (with the missing names) when any is absent.
 * SHA256SUMS, when present, is attached to each source and checked while reading.
 */
export function findCifarFiles(dir: string): { set?: CifarSourceSet; missing: string[] } {
  const sums = readSha256Sums(dir);
  const missing: string[] = [];
  const pick = (names: readonly string[]) =>
    names.flatMap((n) => {
      const s = fileSource(dir, n, sums);
      if (!s) missing.push(n);
      return s ? [s] : [];
    });
  const train = pick(CIFAR.trainFiles);
  const test = pick(CIFAR.testFiles);
  if (missing.length) return { missing };
  return {
    missing,
    set: { train, test, classes: readClassNames(dir), kind: 'files', description: `${dir}${sums.size ? ' (SHA256SUMS verified)' : ''}` },
  };
}

// ---------------------------------------------------------------------------------------------
// Validating reader
// ---------------------------------------------------------------------------------------------

/** Whole records of one source: `count` records starting at record `first` of the file. */
export interface RecordChunk {
  /** Index of the first record of this chunk within its file. */
  first: number;
  count: number;
  /** `count * 3073` bytes: label, then R, G, B planes, per record. */
  bytes: Buffer;
}

export interface ReadRecordsOptions {
  /** Records the file must hold (a CIFAR-10 batch file holds 10,000); undefined accepts any count. */
  expectedRecords?: number;
  signal?: AbortSignal;
}

function truncatedMessage(name: string, size: number): string {
  const record = Math.floor(size / CIFAR.recordBytes);
  const at = record * CIFAR.recordBytes;
  return `${name}: record ${record} at byte ${at} is truncated (${size - at} of ${CIFAR.recordBytes} bytes)`;
}

/** Checks what is known before reading: size a whole number of records, expected count. */
export function checkSourceSize(src: CifarSource, expectedRecords?: number): number {
  if (src.bytes % CIFAR.recordBytes !== 0) throw new CifarFormatError(truncatedMessage(src.name, src.bytes));
  const records = src.bytes / CIFAR.recordBytes;
  if (expectedRecords !== undefined && records !== expectedRecords) {
    throw new CifarFormatError(
      `${src.name}: holds ${records} records (${src.bytes} bytes); a CIFAR-10 batch file holds ${expectedRecords} records (${expectedRecords * CIFAR.recordBytes} bytes)`,
    );
  }
  return records;
}

/**
 * Streams whole, validated records of a source: every label is checked (0–9), a trailing partial
 * record or a size different from the announced one is an error naming the record and byte
 * offset, and the SHA-256 of the bytes is compared with SHA256SUMS at the end.
 */
export async function* readCifarRecords(src: CifarSource, opts: ReadRecordsOptions = {}): AsyncGenerator<RecordChunk> {
  const R = CIFAR.recordBytes;
  const announced = checkSourceSize(src, opts.expectedRecords);
  const hash = src.expectedSha256 ? createHash('sha256') : undefined;
  let carry: Buffer | undefined; // partial record from the previous chunk
  let offset = 0; // bytes consumed so far (start of `carry`)
  let record = 0;
  for await (const raw of src.open(opts.signal)) {
    hash?.update(raw);
    let buf = carry ? Buffer.concat([carry, raw]) : raw;
    const whole = Math.floor(buf.length / R);
    if (whole > 0) {
      const bytes = buf.subarray(0, whole * R);
      for (let i = 0; i < whole; i++) {
        const label = bytes[i * R];
        if (label > 9) {
          throw new CifarFormatError(`${src.name}: record ${record + i} at byte ${offset + i * R} has label ${label} (labels are 0–9)`);
        }
      }
      if (record + whole > announced) {
        throw new CifarFormatError(
          `${src.name}: more data than the ${announced * R} bytes announced (record ${announced} at byte ${announced * R})`,
        );
      }
      yield { first: record, count: whole, bytes };
      record += whole;
      offset += whole * R;
      buf = buf.subarray(whole * R);
    }
    carry = buf.length ? Buffer.from(buf) : undefined;
  }
  const total = offset + (carry?.length ?? 0);
  if (carry?.length) throw new CifarFormatError(truncatedMessage(src.name, total));
  if (record !== announced) {
    throw new CifarFormatError(
      `${src.name}: record ${record} at byte ${offset} is missing (${record} of ${announced} records; the file ended early)`,
    );
  }
  if (hash && src.expectedSha256) {
    const got = hash.digest('hex');
    if (got !== src.expectedSha256) {
      throw new CifarFormatError(`${src.name}: SHA-256 ${got} does not match SHA256SUMS (${src.expectedSha256}); the file is corrupt`);
    }
  }
}

/**
 * Sources whose bytes are fetched one file ahead: opening source i starts reading source i+1 into
 * memory (at most one file, 30 MB for CIFAR-10), so two `xz` processes decompress at once on a
 * multi-core machine and decompression does not stall while the consumer is busy.
 */
export function withReadAhead(sources: CifarSource[], signal?: AbortSignal): CifarSource[] {
  const eager = new Map<number, EagerRead>();
  const start = (i: number) => {
    if (i < sources.length && !eager.has(i)) eager.set(i, new EagerRead(sources[i].open(signal)));
  };
  return sources.map((src, i) => ({
    ...src,
    open: () => {
      start(i);
      start(i + 1);
      const e = eager.get(i) as EagerRead;
      eager.delete(i);
      return e.drain();
    },
  }));
}

class EagerRead {
  private chunks: Buffer[] = [];
  private done = false;
  private error: unknown;
  private wake?: () => void;
  constructor(source: AsyncIterable<Buffer>) {
    void (async () => {
      try {
        for await (const c of source) {
          this.chunks.push(c);
          this.wake?.();
        }
      } catch (err) {
        this.error = err ?? new Error('read failed');
      }
      this.done = true;
      this.wake?.();
    })();
  }
  async *drain(): AsyncGenerator<Buffer> {
    for (;;) {
      if (this.chunks.length) {
        yield this.chunks.shift() as Buffer;
        continue;
      }
      if (this.error !== undefined) throw this.error;
      if (this.done) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Generated CIFAR-format data
// ---------------------------------------------------------------------------------------------

/** Per-class base colour so a model can learn something from generated data. */
const CLASS_COLOURS: ReadonlyArray<readonly [number, number, number]> = [
  [200, 40, 40],
  [40, 200, 40],
  [40, 40, 200],
  [200, 200, 40],
  [200, 40, 200],
  [40, 200, 200],
  [230, 130, 30],
  [120, 60, 20],
  [150, 150, 150],
  [20, 20, 20],
];

/**
 * Writes `count` generated records, deterministic in (seed, first), into `out` at `at`.
 * Label = PRNG mod 10; pixels = class colour (with a class-dependent gradient) blended with noise.
 */
export function generateRecords(seed: number, first: number, count: number, out: Uint8Array, at = 0): void {
  const R = CIFAR.recordBytes;
  for (let r = 0; r < count; r++) {
    const rnd = mulberry32((seed * 0x9e3779b1) ^ Math.imul(first + r + 1, 0x85ebca6b));
    const label = rnd() % 10;
    const base = at + r * R;
    out[base] = label;
    const colour = CLASS_COLOURS[label];
    for (let c = 0; c < 3; c++) {
      const plane = base + 1 + c * 1024;
      const tone = colour[c];
      for (let p = 0; p < 1024; p += 4) {
        const noise = rnd();
        for (let k = 0; k < 4; k++) {
          const i = p + k;
          const grad = label & 1 ? (i >> 5) * 2 : (i & 31) * 2; // vertical or horizontal gradient
          const n = (noise >>> (k * 8)) & 0xff;
          const v = (tone * 0.6 + grad * 0.4 + n * 0.35) | 0;
          out[plane + i] = v > 255 ? 255 : v;
        }
      }
    }
  }
}

/** A generated batch file of `count` records (record `i` is global record `first + i`). */
export function generatedSource(name: string, seed: number, first: number, count: number): CifarSource {
  return {
    name,
    origin: `generated(seed=${seed}, records ${first}..${first + count - 1})`,
    bytes: count * CIFAR.recordBytes,
    async *open(signal?: AbortSignal) {
      const per = 1000;
      for (let done = 0; done < count; done += per) {
        signal?.throwIfAborted();
        const n = Math.min(per, count - done);
        const buf = Buffer.allocUnsafe(n * CIFAR.recordBytes);
        generateRecords(seed, first + done, n, buf);
        yield buf;
      }
    },
  };
}

/** Splits n into k near-equal parts (the first n % k parts one larger). */
function evenParts(n: number, k: number): number[] {
  return Array.from({ length: k }, (_, i) => Math.floor(((i + 1) * n) / k) - Math.floor((i * n) / k));
}

/**
 * A generated CIFAR-format set: `trainRecords` training records over five data_batch files and
 * `testRecords` (default trainRecords / 5) in test_batch. Deterministic in `seed`.
 */
export function generatedCifarSet(trainRecords: number, opts: { testRecords?: number; seed?: number } = {}): CifarSourceSet {
  const seed = opts.seed ?? 1;
  const testRecords = opts.testRecords ?? Math.floor(trainRecords / 5);
  let first = 0;
  const train = evenParts(trainRecords, CIFAR.trainFiles.length).map((n, i) => {
    const s = generatedSource(CIFAR.trainFiles[i], seed, first, n);
    first += n;
    return s;
  });
  const test = [generatedSource(CIFAR.testFiles[0], seed + 1_000_003, 0, testRecords)];
  return {
    train,
    test,
    classes: [...CIFAR.classes],
    kind: 'generated',
    description: `generated (seed ${seed}, ${trainRecords} train / ${testRecords} test)`,
  };
}

/**
 * Writes a set to `dir` as CIFAR batch files (tests, fixtures): data_batch_1..5.bin, test_batch.bin,
 * batches.meta.txt and SHA256SUMS; with `xz: true` the batch files are `.bin.xz`.
 */
export async function writeCifarFiles(dir: string, set: CifarSourceSet, opts: { xz?: boolean; sha256sums?: boolean } = {}): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const sums: string[] = [];
  for (const src of [...set.train, ...set.test]) {
    const file = path.join(dir, src.name);
    const hash = createHash('sha256');
    const fd = fs.openSync(file, 'w');
    try {
      for await (const chunk of src.open()) {
        hash.update(chunk);
        fs.writeSync(fd, chunk);
      }
    } finally {
      fs.closeSync(fd);
    }
    sums.push(`${hash.digest('hex')}  ${src.name}`);
    if (opts.xz) {
      const res = spawnSync(xzCommand(), ['-z', '-0', '-f', '-T1', '--', file]);
      if (res.status !== 0) throw new Error(`xz failed on ${file}: ${res.stderr}`);
    }
  }
  fs.writeFileSync(path.join(dir, 'batches.meta.txt'), set.classes.join('\n') + '\n');
  if (opts.sha256sums !== false) fs.writeFileSync(path.join(dir, 'SHA256SUMS'), sums.join('\n') + '\n');
}
