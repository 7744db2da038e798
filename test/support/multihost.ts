/**
 * The multi-host stack the test/multihost suites share: `tfos stack up --hosts 3` in a TFOS_HOME
 * of its own (provisioned folders linked from the real cache, so nothing is installed twice and
 * the loopback stack others use is left alone). One start per test run: mocha's root hooks
 * (test/multihost/hooks.ts) start it before the first suite and remove it after the last; or
 * scripts/test.sh starts it and passes TFOS_TEST_MULTIHOST_HOME.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runAllowingFailure } from '../../lib/platform/exec';
import { tfosPaths } from '../../lib/platform/paths';
import { promisify } from 'node:util';
import { stackDown, stackStatus, StackStatus, stackUp } from '../../lib/stack/stack';

export interface MultiHostStack {
  /** TFOS_HOME of the stack: commands run with it find the stack by themselves. */
  home: string;
  env: NodeJS.ProcessEnv;
  status: StackStatus;
}

let current: MultiHostStack | undefined;
let owned = false;
let previousHome: string | undefined;

/** In this process too, every library call finds the multi-host stack as a user's would: by TFOS_HOME. */
function useHome(home: string): void {
  previousHome = process.env.TFOS_HOME;
  process.env.TFOS_HOME = home;
}

function restoreHome(): void {
  if (previousHome === undefined) delete process.env.TFOS_HOME;
  else process.env.TFOS_HOME = previousHome;
}

/** A TFOS_HOME whose provisioned folders are links to those of `from` (everything but stack/). */
export function linkedHome(from = tfosPaths().home): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-mh-'));
  for (const name of fs.readdirSync(from)) {
    if (name !== 'stack') fs.symlinkSync(path.join(from, name), path.join(home, name));
  }
  return home;
}

/** Network namespaces need root and iproute2. */
export async function canBuildHosts(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  const res = await runAllowingFailure('ip', ['netns', 'list'], { timeoutMs: 10_000 }).catch(() => undefined);
  return res?.code === 0;
}

export async function startMultiHostStack(): Promise<MultiHostStack | undefined> {
  if (current) return current;
  const given = process.env.TFOS_TEST_MULTIHOST_HOME?.trim();
  if (given) {
    const env = { ...process.env, TFOS_HOME: given };
    const status = await stackStatus(tfosPaths(env));
    if (!status?.hosts) throw new Error(`TFOS_TEST_MULTIHOST_HOME=${given} has no multi-host stack running`);
    current = { home: given, env, status };
    useHome(given);
    return current;
  }
  if (!(await canBuildHosts())) return undefined;
  const home = linkedHome();
  const env = { ...process.env, TFOS_HOME: home };
  const started = Date.now();
  try {
    // YARN shares the start (TFOS_TEST_YARN=0 leaves it out): the Livy tests then run through it.
    const status = await stackUp({
      hosts: 3,
      yarn: process.env.TFOS_TEST_YARN !== '0',
      env,
      log: (l) => process.stderr.write(`      [multi-host stack] ${l}\n`),
    });
    process.stderr.write(`      [multi-host stack] up in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    current = { home, env, status };
    owned = true;
    useHome(home);
    return current;
  } catch (err) {
    fs.rmSync(home, { recursive: true, force: true });
    throw err;
  }
}

export function multiHostStack(): MultiHostStack | undefined {
  return current;
}

export async function stopMultiHostStack(): Promise<void> {
  if (current) restoreHome();
  if (!current || !owned) return;
  const { home, env } = current;
  current = undefined;
  owned = false;
  await stackDown({ env });
  fs.rmSync(home, { recursive: true, force: true });
}

/** Namespaces and links whose names start with `tf<id>` / `tfos-<id>-` (the stack network's). */
export async function networkLeftovers(id: string): Promise<string[]> {
  const ns = await runAllowingFailure('ip', ['netns', 'list'], { timeoutMs: 10_000 });
  const links = await runAllowingFailure('ip', ['-o', 'link', 'show'], { timeoutMs: 10_000 });
  return [
    ...ns.stdout
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((n) => n.startsWith(`tfos-${id}-`)),
    ...links.stdout
      .split('\n')
      .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '')
      .filter((n) => n.startsWith(`tf${id}`)),
  ];
}

/** Generated CIFAR-10 on the stack's HDFS, written once per run from this (root) namespace. */
export const CIFAR_RECORDS = { train: 600, test: 120 };
let cifar: Promise<string> | undefined;

/**
 * hdfs://<host a>/tfos-mh/cifar10 (train/, test/): `tfos data cifar10 --generate`, so every block
 * goes to a worker host's DataNode through WebHDFS's redirect — which must name an address this
 * namespace reaches.
 */
export function cifarOnStack(mh: MultiHostStack): Promise<string> {
  cifar ??= (async () => {
    const data = `${mh.status.hdfs.defaultFS}/tfos-mh/cifar10`;
    const root = path.resolve(__dirname, '../../..');
    await promisify(execFile)(
      process.execPath,
      [
        path.join(root, 'bin/tfos.js'),
        'data',
        'cifar10',
        '--generate',
        String(CIFAR_RECORDS.train),
        '--dest',
        data,
        '--webhdfs',
        mh.status.hdfs.webhdfs,
        '--partitions',
        '4',
        '--overwrite',
      ],
      { env: mh.env, timeout: 300_000 },
    );
    return data;
  })();
  return cifar;
}
