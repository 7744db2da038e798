/**
 * Process groups: everything we spawn that forks (spark-submit, mvn, a service's JVM) runs as the
 * leader of its own group, so one signal reaches the whole tree and nothing is orphaned.
 */
import * as fs from 'node:fs';

/** Signals a process group (SIGKILL unless told otherwise), ignoring groups that are already gone. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** True if a process with this pid exists (and is not a zombie we could reap). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * When a process started, in clock ticks since boot (/proc/PID/stat field 22); undefined when it is
 * gone. With the boot id, it tells a recorded process from a later one that reuses its pid.
 */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command start at field 3 (state); starttime is field 22.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

/** This boot of the machine (Linux); a state file written under another boot names no live process. */
export function bootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A process recorded earlier, identified by pid and (when recorded) its start time. */
export interface RecordedProcess {
  pid: number;
  startTicks?: number;
}

/** True if the recorded process itself still runs (not another process that took its pid). */
export function recordedProcessAlive(p: RecordedProcess): boolean {
  if (!isAlive(p.pid)) return false;
  return p.startTicks === undefined || processStartTicks(p.pid) === p.startTicks;
}

/** Pids of every process in a process group (read from /proc, Linux). */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return members;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command: state ppid pgrp ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[2]) === pgid && rest[0] !== 'Z') members.push(Number(entry));
    } catch {
      /* process vanished */
    }
  }
  return members;
}
