/**
 * The local stack (Spark standalone, HDFS, Livy) that integration suites are promised.
 *
 * Fail closed: a suite that needs a service asks for it here and gets an exception naming the
 * service when it is missing or unhealthy, never a silent skip. `npm test` (scripts/test.sh)
 * checks the stack once and exports TFOS_TEST_* for the run; a file run on its own reads
 * `tfos stack status --json` itself. Run as a script, this module prints those exports (or
 * exits 1 naming what is wrong), which is how scripts/test.sh gets them.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { findLivySource } from '../../lib/stack/livy-server';
import { tfosPaths } from '../../lib/platform/paths';

const REPO = path.resolve(__dirname, '../../..');

export interface TestStack {
  sparkMaster: string;
  /** The standalone master's web UI (its JSON status page, drivers, workers' UIs). */
  sparkUi?: string;
  defaultFS: string;
  webhdfs: string;
  livy: string;
  /** The stack's Livy runs interactive sessions (0.9.0 built from source). */
  livySessions: boolean;
}

export type StackService = 'spark' | 'hdfs' | 'livy';

/** What `tfos stack status --json` prints (null: no stack). */
interface StatusJson {
  spark: { master: string; ui: string; workers: number; healthy: boolean };
  hdfs: { defaultFS: string; webhdfs: string; healthy: boolean };
  livy: { url: string; healthy: boolean; sessions?: boolean };
}

export class StackUnavailableError extends Error {
  constructor(
    readonly service: StackService | 'stack',
    detail: string,
  ) {
    super(`${service === 'stack' ? 'the local stack' : `the local stack's ${service}`} ${detail}`);
    this.name = 'StackUnavailableError';
  }
}

const HOW = "start it with 'node bin/tfos.js stack up' (npm test does this when no stack runs)";

/** Reads and checks `tfos stack status --json`; throws naming the first unhealthy service. */
export function readStackStatus(): TestStack {
  let out: string;
  try {
    out = execFileSync(process.execPath, [path.join(REPO, 'bin', 'tfos.js'), 'stack', 'status', '--json'], {
      encoding: 'utf8',
      timeout: 60_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    // Exit status 1 means "not all healthy"; the JSON on stdout says which.
    out = String((err as { stdout?: string }).stdout ?? '');
    if (!out.trim()) throw new StackUnavailableError('stack', `status could not be read: ${(err as Error).message.split('\n')[0]}`);
  }
  let s: StatusJson | null;
  try {
    s = JSON.parse(out) as StatusJson | null;
  } catch {
    throw new StackUnavailableError('stack', `status is not JSON: ${out.slice(0, 200)}`);
  }
  if (!s) throw new StackUnavailableError('stack', `is not running; ${HOW}`);
  const logs = `its log is under ${path.join(tfosPaths().stack, 'logs')}`;
  if (!s.spark.healthy)
    throw new StackUnavailableError('spark', `master ${s.spark.master} is not healthy (${s.spark.workers} live worker(s)); ${logs}`);
  if (!s.hdfs.healthy) throw new StackUnavailableError('hdfs', `WebHDFS at ${s.hdfs.webhdfs} is not healthy; ${logs}`);
  if (!s.livy.healthy) throw new StackUnavailableError('livy', `at ${s.livy.url} is not healthy; ${logs}`);
  return {
    sparkMaster: s.spark.master,
    sparkUi: s.spark.ui,
    defaultFS: s.hdfs.defaultFS,
    webhdfs: s.hdfs.webhdfs,
    livy: s.livy.url,
    livySessions: s.livy.sessions === true,
  };
}

let cached: TestStack | undefined;

/**
 * The stack for this run: TFOS_TEST_* when scripts/test.sh exported them, else the running
 * stack's status. Throws StackUnavailableError (naming the service) when there is none.
 */
export function requireStack(): TestStack {
  if (cached) return cached;
  const e = process.env;
  const given = [e.TFOS_TEST_SPARK_MASTER, e.TFOS_TEST_DEFAULT_FS, e.TFOS_TEST_WEBHDFS, e.TFOS_TEST_LIVY].map((v) => v?.trim() ?? '');
  if (given.every(Boolean)) {
    cached = {
      sparkMaster: given[0],
      sparkUi: e.TFOS_TEST_SPARK_UI?.trim() || undefined,
      defaultFS: given[1],
      webhdfs: given[2],
      livy: given[3],
      livySessions: e.TFOS_TEST_LIVY_SESSIONS === '1',
    };
  } else if (given.some(Boolean)) {
    throw new StackUnavailableError(
      'stack',
      'is only partly described: set all of TFOS_TEST_SPARK_MASTER, TFOS_TEST_DEFAULT_FS, TFOS_TEST_WEBHDFS and TFOS_TEST_LIVY, or none',
    );
  } else {
    cached = readStackStatus();
  }
  return cached;
}

/**
 * Whether the stack's Livy runs interactive sessions. A Livy without them is only acceptable
 * where no Livy 0.9.0 source release exists to build one (the 0.7.1 fallback): then the reason is
 * returned for the caller to print as it skips. Anywhere else it is a broken setup: it throws.
 */
export function livySessionsOrWhyNot(s: Pick<TestStack, 'livy' | 'livySessions'>): { ok: true } | { ok: false; why: string } {
  if (s.livySessions) return { ok: true };
  let source: string | undefined;
  try {
    source = findLivySource(tfosPaths());
  } catch (err) {
    throw new StackUnavailableError('livy', `at ${s.livy} runs no sessions, and its source release is unusable: ${(err as Error).message}`);
  }
  if (source) {
    throw new StackUnavailableError(
      'livy',
      `at ${s.livy} runs no interactive sessions although Livy's source release is at ${source}: run 'node bin/tfos.js setup' and restart the stack`,
    );
  }
  return {
    ok: false,
    why: `Livy at ${s.livy} is the 0.7.1 fallback (no Livy 0.9.0 source release on this machine: TFOS_LIVY_SRC, the download cache or ../shared/vendor), which runs no sessions`,
  };
}

/** Shell exports for the whole test run (scripts/test.sh evaluates them). */
export function stackExports(s: TestStack): string {
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  return [
    `export TFOS_TEST_SPARK_MASTER=${q(s.sparkMaster)}`,
    ...(s.sparkUi ? [`export TFOS_TEST_SPARK_UI=${q(s.sparkUi)}`] : []),
    `export TFOS_TEST_DEFAULT_FS=${q(s.defaultFS)}`,
    `export TFOS_TEST_WEBHDFS=${q(s.webhdfs)}`,
    `export TFOS_TEST_LIVY=${q(s.livy)}`,
    `export TFOS_TEST_LIVY_SESSIONS=${s.livySessions ? 1 : 0}`,
  ].join('\n');
}

if (require.main === module) {
  try {
    console.log(stackExports(readStackStatus()));
  } catch (err) {
    console.error(`npm test: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
