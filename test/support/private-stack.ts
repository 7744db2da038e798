/**
 * A loopback stack of its own (HDFS, a Spark standalone master with 2 workers, Livy) for the tests
 * that break services on purpose: a TFOS_HOME whose provisioned folders are links to the shared
 * cache (nothing installed twice), free ports, started once by the suite that needs it and removed
 * at its end. The shared stack everyone else tests against is never touched.
 *
 * While it runs, this process's TFOS_HOME names it, so routes and paths left to their defaults
 * (the stack's HADOOP_CONF_DIR, its master) find it as a user's run would.
 *
 * `stop` and `restart` act on one service as an operator (or a crash) would: the same command
 * line, environment and working directory as the process that was stopped, on the same ports; the
 * stack's state file is updated so `stack down` stops the new process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tfosPaths } from '../../lib/platform/paths';
import { groupMembers, isAlive } from '../../lib/platform/process-group';
import { isPortFree, isPortOpen } from '../../lib/stack/ports';
import { stackDown, StackStatus, stackUp } from '../../lib/stack/stack';
import { RunningService, startService, stopService } from '../../lib/stack/supervisor';
import { linkedHome } from './multihost';
import { waitFor } from './processes';

export interface PrivateStack {
  home: string;
  env: NodeJS.ProcessEnv;
  status: StackStatus;
  /** The running service named `name` (hdfs-datanode, spark-worker-2, livy...), from the state file. */
  service(name: string): RunningService;
  /**
   * Stops one service: 'term' signals its whole process group (an operator's stop), 'kill-group'
   * SIGKILLs the group (a host crash), 'kill-leader' SIGKILLs only the daemon itself (the daemon
   * crashed), so what it started (Livy's spark-submit) lives on. Resolves once the daemon is gone.
   */
  stop(name: string, how: 'term' | 'kill-group' | 'kill-leader'): Promise<void>;
  /** Starts a stopped service again with its former command; resolves once its ports answer. */
  restart(name: string): Promise<void>;
  down(): Promise<void>;
}

interface Captured {
  argv: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
}

function stateFile(home: string): string {
  return path.join(home, 'stack', 'state.json');
}

function readServices(home: string): RunningService[] {
  return (JSON.parse(fs.readFileSync(stateFile(home), 'utf8')) as { services: RunningService[] }).services;
}

function recordService(home: string, svc: RunningService): void {
  const file = stateFile(home);
  const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { services: RunningService[] };
  state.services = state.services.map((s) => (s.name === svc.name ? svc : s));
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
  fs.renameSync(`${file}.tmp`, file);
}

function capture(pid: number): Captured {
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const env: NodeJS.ProcessEnv = {};
  for (const kv of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)) {
    const i = kv.indexOf('=');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { argv, env, cwd: fs.readlinkSync(`/proc/${pid}/cwd`) };
}

let previousHome: string | undefined;

/**
 * The first of `count` consecutive free ports below the kernel's ephemeral range (32768 and up):
 * a service restarted by these tests must find its ports again, and an ephemeral port can be taken
 * by any outgoing connection on the machine while the service is down.
 */
async function freePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * (12_000 - count));
    let free = true;
    for (let p = base; p < base + count && free; p++) free = await isPortFree(p);
    if (free) return base;
  }
  throw new Error(`no ${count} consecutive free ports found between 20000 and 32000`);
}

export async function startPrivateStack(log: (line: string) => void = () => undefined): Promise<PrivateStack> {
  const home = linkedHome();
  const env = { ...process.env, TFOS_HOME: home };
  const ports = {
    sparkMaster: await freePorts(1),
    sparkMasterUi: await freePorts(1),
    sparkWorkerUiBase: await freePorts(2),
    nameNodeRpc: await freePorts(1),
    // The DataNode takes the next 3 ports.
    nameNodeHttp: await freePorts(4),
    livy: await freePorts(1),
  };
  let status: StackStatus;
  try {
    status = await stackUp({ workers: 2, ports, env, log });
  } catch (err) {
    await stackDown({ env }).catch(() => undefined);
    fs.rmSync(home, { recursive: true, force: true });
    throw err;
  }
  previousHome = process.env.TFOS_HOME;
  process.env.TFOS_HOME = home;
  const captured = new Map<string, Captured>();
  const service = (name: string): RunningService => {
    const s = readServices(home).find((x) => x.name === name);
    if (!s) throw new Error(`the private stack has no service ${name}`);
    return s;
  };
  return {
    home,
    env,
    status,
    service,
    async stop(name, how) {
      const svc = service(name);
      captured.set(name, capture(svc.pid));
      if (how === 'term') return stopService(svc, 20_000);
      process.kill(how === 'kill-group' ? -svc.pid : svc.pid, 'SIGKILL');
      await waitFor(() => !isAlive(svc.pid) && (how !== 'kill-group' || groupMembers(svc.pid).length === 0), {
        timeoutMs: 60_000,
        what: `${name} (pid ${svc.pid}) did not stop`,
      });
    },
    async restart(name) {
      const former = captured.get(name);
      if (!former) throw new Error(`${name} was not stopped by this suite: nothing to restart`);
      const svc = service(name);
      const spec = {
        name,
        command: former.argv[0],
        args: former.argv.slice(1),
        env: former.env,
        cwd: former.cwd,
        ports: svc.ports,
        healthy: async () => (await Promise.all(svc.ports.map((p) => isPortOpen(p)))).every(Boolean),
        startTimeoutMs: 180_000,
      };
      // A port of the stopped daemon may still be held for a while (a closing connection's
      // TIME_WAIT on a listener that does not reuse addresses): try again, bounded.
      let restarted: RunningService | undefined;
      for (let attempt = 1; !restarted; attempt++) {
        try {
          restarted = await startService(spec, tfosPaths(env).logs);
        } catch (err) {
          if (attempt >= 4 || !/BindException|Address already in use|EADDRINUSE/.test((err as Error).message)) throw err;
          await new Promise((r) => setTimeout(r, 15_000));
        }
      }
      recordService(home, restarted);
      captured.delete(name);
    },
    async down() {
      if (previousHome === undefined) delete process.env.TFOS_HOME;
      else process.env.TFOS_HOME = previousHome;
      await stackDown({ env });
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
