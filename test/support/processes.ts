/**
 * The processes of one cluster under test, found by its id, never by a machine-wide pattern: other
 * jobs on the same machine (another engineer's tests, a user's run) must not fail ours.
 * A trainer carries TFOS_CLUSTER_ID=<id> in its environment; the spark-submit JVM has the id in
 * its application name; the launcher and local-mode workers are their descendants.
 */
import * as fs from 'node:fs';

function pids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

function read(pid: number, file: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'latin1');
  } catch {
    return ''; // gone, or not ours to read
  }
}

function parentOf(pid: number): number {
  // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
  const stat = read(pid, 'stat');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[1] ?? 0);
}

function isZombie(pid: number): boolean {
  const stat = read(pid, 'stat');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

/** Live processes of cluster `clusterId`: its trainers, its Spark application and their children. */
export function clusterProcesses(clusterId: string): number[] {
  const all = pids().filter((p) => p !== process.pid && !isZombie(p));
  const roots = new Set(
    all.filter(
      (p) => read(p, 'environ').split('\0').includes(`TFOS_CLUSTER_ID=${clusterId}`) || read(p, 'cmdline').includes(`(${clusterId})`),
    ),
  );
  const members = new Set(roots);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (!members.has(p) && members.has(parentOf(p))) {
        members.add(p);
        grew = true;
      }
    }
  }
  return [...members].sort((a, b) => a - b);
}

/** Trainer processes (TFOS_CLUSTER_ID in the environment) of cluster `clusterId` that are alive. */
export function clusterTrainers(clusterId: string): number[] {
  return pids().filter((p) => !isZombie(p) && read(p, 'environ').split('\0').includes(`TFOS_CLUSTER_ID=${clusterId}`));
}

/** One line per process, for assertion messages. */
export function describeProcesses(list: number[]): string {
  return list.map((p) => `${p}: ${read(p, 'cmdline').split('\0').join(' ').slice(0, 160)}`).join('\n');
}

/**
 * Resolves once `cond()` holds, checking every `everyMs`; rejects with `what` after `timeoutMs`.
 * For conditions nothing signals (a process exiting elsewhere), instead of a fixed sleep.
 */
export async function waitFor(
  cond: () => boolean,
  opts: { timeoutMs: number; what: string | (() => string); everyMs?: number },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`${typeof opts.what === 'function' ? opts.what() : opts.what} (waited ${opts.timeoutMs / 1000} s)`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 200));
  }
}
