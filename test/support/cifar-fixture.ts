/**
 * CIFAR-format fixtures for tests: small generated sets written as batch files, corruption helpers,
 * the shared real dataset when this machine has it, and the pyarrow Python when provisioned.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CIFAR, CifarSourceSet, generatedCifarSet, generateRecords, writeCifarFiles } from '../../lib/io/cifar10';
import { defaultArrowPython } from '../../lib/io/dataset-parquet';

/** The repository root (this file is dist/test/support/cifar-fixture.js once built). */
const REPO = path.resolve(__dirname, '../../..');

/** Where the real CIFAR-10 set is looked for: TFOS_CIFAR10_DIR, else `../shared/datasets/cifar10` beside the repository. */
export function sharedCifarLocation(): string {
  return process.env.TFOS_CIFAR10_DIR?.trim() || path.join(path.dirname(REPO), 'shared', 'datasets', 'cifar10');
}

/** The real CIFAR-10 directory if it has the files. */
export function sharedCifarDir(): string | undefined {
  const dir = sharedCifarLocation();
  const ok = [...CIFAR.trainFiles, ...CIFAR.testFiles].every(
    (n) => fs.existsSync(path.join(dir, n)) || fs.existsSync(path.join(dir, `${n}.xz`)),
  );
  return ok ? dir : undefined;
}

export function tempDir(prefix = 'tfos-cifar-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes a generated set of `train` records (five files) and `test` records as CIFAR batch files. */
export async function writeCifarFixture(
  dir: string,
  train: number,
  opts: { test?: number; seed?: number; xz?: boolean } = {},
): Promise<CifarSourceSet> {
  const set = generatedCifarSet(train, { testRecords: opts.test, seed: opts.seed ?? 3 });
  await writeCifarFiles(dir, set, { xz: opts.xz });
  return set;
}

/** Cuts a file to `bytes` bytes. */
export function truncateFile(file: string, bytes: number): void {
  fs.truncateSync(file, bytes);
}

/** Overwrites the label byte of record `record`. */
export function setLabel(file: string, record: number, label: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, Buffer.from([label]), 0, 1, record * CIFAR.recordBytes);
  } finally {
    fs.closeSync(fd);
  }
}

/** The generated record `index` of a generated source (seed, first) — what a reader must return. */
export function generatedRecord(seed: number, index: number): Buffer {
  const buf = Buffer.alloc(CIFAR.recordBytes);
  generateRecords(seed, index, 1, buf);
  return buf;
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** pyarrow's Python (provisioned by `tfos setup`), or undefined when this machine has none. */
export function arrowPython(): string | undefined {
  const py = defaultArrowPython();
  if (!py) return undefined;
  try {
    execFileSync(py, ['-c', 'import pyarrow.parquet'], { stdio: 'ignore', timeout: 60_000 });
    return py;
  } catch {
    return undefined;
  }
}

/** Rows of a Parquet dataset directory as pyarrow reads it (what Spark sees: `_`-prefixed entries skipped). */
export function parquetRowCount(python: string, dir: string): { rows: number; columns: string[]; types: string[] } {
  const out = execFileSync(
    python,
    [
      '-c',
      'import sys, json, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]); print(json.dumps({"rows": t.num_rows, "columns": t.column_names, "types": [str(f.type) for f in t.schema]}))',
      dir,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  return JSON.parse(out.trim()) as { rows: number; columns: string[]; types: string[] };
}

/** Entries of `parent` whose names start with `.<base>.tmp-` (staging leftovers of a failed ingest). */
export function stagingLeftovers(parent: string, base: string): string[] {
  try {
    return fs.readdirSync(parent).filter((n) => n.startsWith(`.${base}.tmp-`));
  } catch {
    return [];
  }
}
