/**
 * Start-up per route, phase by phase: TFCluster.run → every node registered for a trivial 3-node
 * cluster (1 ps), side by side in one process, with the CPU seconds the cluster's processes burnt
 * to get there (wall time on a shared 2-core machine mostly measures the neighbours; CPU does not).
 * Each route also runs with Spark's stock JVM flags, to show what the quick-start flags buy.
 *
 * TFOS_BENCH_REPEATS (default 1) runs each variant that many times, alternating; cells are medians.
 * TFOS_BENCH_ROUTES (column names separated by ';') picks variants.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RouteOption, TFCluster } from '../lib/driver/tf-cluster';
import { phaseLabel, PhaseTiming, STARTUP_PHASES } from '../lib/driver/phases';
import { stackStatus } from '../lib/stack/stack';
import { clusterProcesses } from '../test/support/processes';
import { Row } from './table';

const fixture = path.resolve(__dirname, '../../test/fixtures/modules/report-context.js');

/** Spark's own JVM defaults instead of our quick-start flags (a user's conf replaces ours). */
const STOCK_JVM = { 'spark.driver.extraJavaOptions': '', 'spark.executor.extraJavaOptions': '' };

interface Sample {
  phases: PhaseTiming[];
  cpu: number;
  total: number;
}

/** CPU seconds (user + system, with reaped children) of the cluster's processes and the app's executors. */
export function clusterCpuSeconds(clusterId: string, appId: string | undefined): number {
  const ids = new Set(clusterProcesses(clusterId));
  const all = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
  const read = (p: number, f: string) => {
    try {
      return fs.readFileSync(`/proc/${p}/${f}`, 'utf8');
    } catch {
      return '';
    }
  };
  // Executor JVMs (children of a standalone worker, not of ours) carry the application id.
  if (appId) for (const p of all) if (read(p, 'cmdline').split('\0').includes(appId)) ids.add(p);
  // Fields after the command name (which may hold ') '): state, ppid, … utime is the 12th of them.
  const fields = (p: number) => {
    const stat = read(p, 'stat');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  };
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (!ids.has(p) && ids.has(Number(fields(p)[1]))) {
        ids.add(p);
        grew = true;
      }
    }
  }
  const tick = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const p of ids) {
    const f = fields(p);
    // Fields 14-17 (utime, stime, cutime, cstime), counted from field 3 after the command name.
    ticks += [11, 12, 13, 14].reduce((a, i) => a + (Number(f[i]) || 0), 0);
  }
  return ticks / tick;
}

async function once(via: RouteOption): Promise<Sample> {
  const t0 = Date.now();
  const handle = await TFCluster.run({ module: fixture, numExecutors: 3, numPs: 1, via, reservationTimeout: 180 });
  const cpu = clusterCpuSeconds(handle.clusterId, handle.sparkAppId);
  const phases = handle.phases.startup();
  await handle.shutdown({ timeout: 300 });
  return { phases, cpu, total: (Date.now() - t0) / 1000 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

export async function benchStartup(repeats = Number(process.env.TFOS_BENCH_REPEATS ?? 1)): Promise<Row[]> {
  const variants: Array<[string, RouteOption]> = [['local', { local: {} }]];
  const stack = await stackStatus().catch(() => undefined);
  const mem = { driverMemory: '512m', executorMemory: '512m' };
  if (stack?.spark.healthy) {
    const master = stack.spark.master;
    variants.push(['spark-submit', { sparkSubmit: { master, conf: { 'spark.executor.memory': '512m' } } }]);
    variants.push(['spark-submit, stock JVMs', { sparkSubmit: { master, conf: { 'spark.executor.memory': '512m', ...STOCK_JVM } } }]);
    // Two nodes per executor: two executor JVMs instead of three.
    variants.push([
      'spark-submit, 2-core executors',
      { sparkSubmit: { master, conf: { 'spark.executor.memory': '512m', 'spark.executor.cores': '2' } } },
    ]);
  }
  if (stack?.livy.healthy) {
    variants.push(['livy batch', { livy: { url: stack.livy.url, ...mem } }]);
    if (stack.livy.sessions) variants.push(['livy session (new)', { livy: { url: stack.livy.url, mode: 'session', ...mem } }]);
  }
  const only = process.env.TFOS_BENCH_ROUTES?.split(';').map((s) => s.trim());
  const chosen = only ? variants.filter(([n]) => only.includes(n)) : variants;
  const samples = new Map<string, Sample[]>(chosen.map(([n]) => [n, []]));
  const load: number[] = [];
  for (let i = 0; i < repeats; i++) {
    for (const [name, via] of chosen) {
      load.push(os.loadavg()[0]);
      // The shared standalone workers may be busy with others' jobs: a failed run leaves its cells empty.
      try {
        samples.get(name)!.push(await once(via));
      } catch (err) {
        console.error(`startup bench: ${name} failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      }
    }
  }
  // One row per phase, one column per route: when the last node reached it (median over runs).
  const rows: Row[] = [];
  for (const phase of STARTUP_PHASES.filter((p) => p !== 'run')) {
    const row: Row = { 'phase (s since run)': phaseLabel(phase) };
    for (const [name] of chosen) {
      const xs = samples.get(name)!.flatMap((s) => s.phases.filter((p) => p.phase === phase).map((p) => p.seconds));
      row[name] = xs.length ? median(xs) : '–';
    }
    rows.push(row);
  }
  const cpuRow: Row = { 'phase (s since run)': 'CPU s to reserved' };
  const totalRow: Row = { 'phase (s since run)': 'whole run s' };
  for (const [name] of chosen) {
    const got = samples.get(name)!;
    cpuRow[name] = got.length ? median(got.map((s) => s.cpu)) : 'failed';
    totalRow[name] = got.length ? median(got.map((s) => s.total)) : 'failed';
  }
  rows.push(cpuRow, totalRow, {
    'phase (s since run)': `load avg during run: ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}, ${repeats} run(s) each`,
  });
  return rows;
}
