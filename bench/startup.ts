/**
 * Start-up latency per route: TFCluster.run → every node registered, and the full run of a
 * trivial 3-node cluster (1 ps), measured side by side in one process.
 */
import * as path from 'node:path';
import { RouteOption, TFCluster } from '../lib/driver/tf-cluster';
import { stackStatus } from '../lib/stack/stack';
import { Row } from './table';

const fixture = path.resolve(__dirname, '../../test/fixtures/modules/report-context.js');

async function once(via: RouteOption): Promise<{ reserved: number; total: number }> {
  const t0 = Date.now();
  const handle = await TFCluster.run({ module: fixture, numExecutors: 3, numPs: 1, via, reservationTimeout: 300 });
  const reserved = Date.now() - t0;
  await handle.shutdown({ timeout: 300 });
  return { reserved: reserved / 1000, total: (Date.now() - t0) / 1000 };
}

export async function benchStartup(repeats = 2): Promise<Row[]> {
  const routes: Array<[string, RouteOption]> = [['local', { local: {} }]];
  const stack = await stackStatus().catch(() => undefined);
  if (stack?.spark.healthy)
    routes.push(['spark-submit (standalone)', { sparkSubmit: { master: stack.spark.master, conf: { 'spark.executor.memory': '512m' } } }]);
  if (stack?.livy.healthy) {
    routes.push(['livy batch', { livy: { url: stack.livy.url, driverMemory: '512m', executorMemory: '512m' } }]);
    if (stack.livy.sessions)
      routes.push(['livy session (new)', { livy: { url: stack.livy.url, mode: 'session', driverMemory: '512m', executorMemory: '512m' } }]);
  }
  const rows: Row[] = [];
  for (const [name, via] of routes) {
    const runs: Array<{ reserved: number; total: number }> = [];
    for (let i = 0; i < repeats; i++) runs.push(await once(via));
    const best = (k: 'reserved' | 'total') => Math.min(...runs.map((r) => r[k]));
    const median = (k: 'reserved' | 'total') => runs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    rows.push({
      route: name,
      runs: runs.length,
      'run→registered best s': best('reserved'),
      'median s': median('reserved'),
      'whole run best s': best('total'),
    });
  }
  return rows;
}
