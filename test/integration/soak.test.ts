/**
 * A bounded soak: one driver process (this one) runs 10 cluster start/stop cycles and 2 short
 * training runs back to back on the embedded local Spark (the cheapest real route: one
 * spark-submit and its trainers per cluster, nothing shared), and must end with what it started
 * with — no open file descriptor, listening port or process more, and a heap after GC within a
 * stated tolerance.
 *
 * The first cycle and the first training run warm up (modules load, caches fill); the baseline is
 * taken after them, and the rest must not grow beyond it. Descriptors, ports and processes go back
 * exactly (a count that is still settling — a child being reaped — is waited for, with a deadline);
 * the heap may grow by HEAP_TOLERANCE_MB, about 0.2 MB per later cluster, which a handle,
 * log buffer or listener kept per cluster would exceed.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { clusterProcesses, describeProcesses, waitFor } from '../support/processes';

const TRAINER = path.resolve(__dirname, '../../../test/fixtures/modules/soak-trainer.js');
const CYCLES = 10;
const TRAININGS = 2;
const HEAP_TOLERANCE_MB = 2;

/** Socket inodes of this process's open descriptors. */
function ownSocketInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed while listing (the listing's own descriptor) */
    }
  }
  return inodes;
}

/** Local addresses (hex, as /proc/net/tcp* writes them) of the TCP sockets this process listens on. */
function listeningPorts(): string[] {
  const mine = ownSocketInodes();
  const out: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      // f[1] local address, f[3] state (0A = LISTEN), f[9] inode
      if (f[3] === '0A' && mine.has(f[9])) out.push(f[1]);
    }
  }
  return out.sort();
}

function parentOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/** Every live descendant of this process. */
function descendants(): number[] {
  const all = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
  const mine = new Set([process.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all)
      if (!mine.has(p) && mine.has(parentOf(p))) {
        mine.add(p);
        grew = true;
      }
  }
  mine.delete(process.pid);
  return [...mine];
}

/** Heap in use after a full collection, in MB. */
function heapAfterGcMb(): number {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

interface Usage {
  fds: number;
  ports: string[];
  children: number[];
  heapMb: number;
}

function usage(): Usage {
  return { fds: fs.readdirSync('/proc/self/fd').length - 1, ports: listeningPorts(), children: descendants(), heapMb: heapAfterGcMb() };
}

/** One cluster of 2 nodes start to finish; then nothing of it may be left. */
async function oneCluster(steps: number): Promise<void> {
  const handle = await TFCluster.run({ module: TRAINER, numExecutors: 2, args: { steps }, reservationTimeout: 180 });
  await handle.shutdown({ timeout: 300 });
  const results = [...handle.nodes.values()].map((n) => n.result as { first?: number; last?: number } | undefined);
  expect(results, 'every node returned').to.have.length(2);
  if (steps) {
    for (const r of results) expect(r!.last!, `training lowered the loss (${r!.first} → ${r!.last})`).to.be.below(r!.first!);
  }
  await waitFor(() => clusterProcesses(handle.clusterId).length === 0, {
    timeoutMs: 60_000,
    what: () => `cluster ${handle.clusterId} left processes:\n${describeProcesses(clusterProcesses(handle.clusterId))}`,
  });
}

describe('bounded soak: cluster start/stop cycles and training runs in one driver', function () {
  this.timeout((CYCLES + TRAININGS) * 240_000);

  it(`${CYCLES} start/stop cycles and ${TRAININGS} training runs leave no descriptor, port, process or heap growth`, async () => {
    // Warm-up: one of each kind.
    await oneCluster(0);
    await oneCluster(20);
    // The baseline counts settle once the warm-up's children are reaped.
    await waitFor(() => descendants().length === 0, {
      timeoutMs: 60_000,
      what: () => `children of the driver after the warm-up:\n${describeProcesses(descendants())}`,
    });
    const before = usage();
    const seen: string[] = [];
    for (let i = 1; i < CYCLES; i++) {
      await oneCluster(0);
      seen.push(`cycle ${i + 1}: ${usage().heapMb.toFixed(1)} MB`);
    }
    await oneCluster(20);
    let after = usage();
    // Sockets and children close asynchronously after shutdown() resolves: wait for them, bounded.
    await waitFor(
      () => {
        after = usage();
        return after.fds <= before.fds && after.ports.length <= before.ports.length && after.children.length === 0;
      },
      { timeoutMs: 60_000, what: () => `descriptors ${before.fds} → ${after.fds}, listening ${before.ports} → ${after.ports}` },
    ).catch(() => undefined);
    console.log(
      `      (fds ${before.fds} → ${after.fds}, listening ports ${before.ports.length} → ${after.ports.length}, ` +
        `children ${before.children.length} → ${after.children.length}, heap after GC ${before.heapMb.toFixed(1)} → ${after.heapMb.toFixed(1)} MB; ${seen.join(', ')})`,
    );
    expect(after.fds, 'open file descriptors').to.be.at.most(before.fds);
    expect(after.ports, 'listening ports').to.deep.equal(before.ports);
    expect(after.children, `children of the driver:\n${describeProcesses(after.children)}`).to.deep.equal([]);
    expect(after.heapMb - before.heapMb, `heap after GC grew from ${before.heapMb.toFixed(1)} MB`).to.be.at.most(HEAP_TOLERANCE_MB);
  });
});
