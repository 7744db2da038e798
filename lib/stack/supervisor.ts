/**
 * Starts and stops the daemons of `tfos stack` described by ServiceSpecs.
 *
 * Each daemon runs in its own process group (detached), writing to <logs>/<name>.log, so that
 * stopping it also stops whatever it forked (Spark executors under a worker, spark-submit under
 * Livy) and nothing is left behind.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { groupMembers, isAlive, processStartTicks } from '../platform/process-group';
import { sleep } from '../platform/sleep';
import { inNamespace } from './netns';
import { describePortHolder, isPortFree } from './ports';
import { ServiceSpec } from './service';

export interface RunningService {
  name: string;
  pid: number;
  /** Start time of the process (see processStartTicks), so a later process reusing the pid is never signalled. */
  startTicks?: number;
  ports: number[];
  log: string;
}

export class PortTakenError extends Error {
  constructor(
    readonly port: number,
    readonly holder: string,
    readonly service: string,
  ) {
    super(`port ${port} (needed by ${service}) is already in use by ${holder}; stop it or choose another port`);
    this.name = 'PortTakenError';
  }
}

/** Fails with PortTakenError naming the first taken port and its holder. */
export async function assertPortsFree(specs: ServiceSpec[]): Promise<void> {
  for (const spec of specs) {
    // A host namespace is created fresh for the stack: nothing else can hold its ports.
    if (spec.netns) continue;
    for (const port of spec.ports) {
      if (!(await isPortFree(port))) throw new PortTakenError(port, await describePortHolder(port), spec.name);
    }
  }
}

export function logTail(file: string, lines = 30): string {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    return text.slice(Math.max(0, text.length - lines)).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Spawns a service detached and waits until its health probe passes; kills it if it never does. */
export async function startService(spec: ServiceSpec, logsDir: string): Promise<RunningService> {
  fs.mkdirSync(logsDir, { recursive: true });
  const log = path.join(logsDir, `${spec.name}.log`);
  const fd = fs.openSync(log, 'a');
  const { command, args } = inNamespace(spec.netns, spec.command, spec.args);
  fs.writeSync(fd, `\n==== ${new Date().toISOString()} starting ${spec.name}: ${command} ${args.join(' ')}\n`);
  const child = spawn(command, args, {
    cwd: spec.cwd,
    env: spec.env,
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!));
    child.once('error', (err) => reject(new Error(`cannot start ${spec.name} (${spec.command}): ${err.message}`)));
  });
  child.unref();
  const running: RunningService = { name: spec.name, pid, startTicks: processStartTicks(pid), ports: spec.ports, log };
  const deadline = Date.now() + spec.startTimeoutMs;
  let exited = false;
  child.once('exit', () => (exited = true));
  for (;;) {
    if (await spec.healthy().catch(() => false)) return running;
    if (exited || !isAlive(pid)) {
      throw new Error(`${spec.name} exited during start-up; last lines of ${log}:\n${logTail(log)}`);
    }
    if (Date.now() > deadline) {
      await stopService(running);
      throw new Error(`${spec.name} did not become healthy within ${spec.startTimeoutMs / 1000} s; last lines of ${log}:\n${logTail(log)}`);
    }
    await sleep(500);
  }
}

/** SIGTERM the service's process group, then SIGKILL whatever is left after the grace period. */
export async function stopService(svc: { pid: number; name: string; startTicks?: number }, graceMs = 15_000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-svc.pid, sig);
    } catch {
      /* group already gone */
    }
  };
  // Another process now has the leader's pid: our group is gone (Linux reuses no pid that is still a group id).
  const ticks = processStartTicks(svc.pid);
  if (ticks !== undefined && svc.startTicks !== undefined && ticks !== svc.startTicks) return;
  if (groupMembers(svc.pid).length === 0) return;
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (groupMembers(svc.pid).length === 0) return;
    await sleep(200);
  }
  signal('SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (groupMembers(svc.pid).length > 0) {
    if (Date.now() > killDeadline) throw new Error(`${svc.name} (process group ${svc.pid}) survived SIGKILL`);
    await sleep(100);
  }
}
