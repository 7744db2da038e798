/**
 * Faults end cleanly, on a real Spark (the embedded local one: these tests break nothing shared).
 * Each breaks one part of a running cluster and expects a ClusterFailedError naming the node at
 * fault, and then no trainer and no Spark process of that cluster left. The bound of each fault
 * is the test's own timeout beyond the start-up; the observed time from fault to error is printed
 * (never asserted: speed lives in benchmarks).
 *
 * Faults that stop shared services (DataNode, Livy, a standalone worker) are not here: they run
 * against a private stack (see faults-private-stack.test.ts).
 */
import { expect } from 'chai';
import * as path from 'node:path';
import { ClusterFailedError, TFClusterHandle } from '../../lib/driver/cluster';
import { TFCluster, TFClusterRunOptions } from '../../lib/driver/tf-cluster';
import { groupMembers, isAlive } from '../../lib/platform/process-group';

const FAULT_TRAINER = path.resolve(__dirname, '../../../test/fixtures/modules/fault-trainer.js');
const START_MS = 240_000;

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  return cond();
}

/** A cluster whose trainers print STEPPING once they train; resolves once all workers do. */
async function startStepping(
  opts: Partial<TFClusterRunOptions>,
  workers: number,
): Promise<{ handle: TFClusterHandle; submitPid: number; logs: string[] }> {
  const logs: string[] = [];
  let submitPid = 0;
  const handle = await TFCluster.run({
    module: FAULT_TRAINER,
    numExecutors: 2,
    via: { local: {} },
    reservationTimeout: 180,
    ...opts,
    onHandle: (h) => {
      h.on('log', (l: { label: string; line: string }) => logs.push(`${l.label}|${l.line}`));
      h.on('progress', (p: { message: string }) => {
        const m = /\(pid (\d+)\)/.exec(p.message);
        if (m && !submitPid) submitPid = Number(m[1]);
      });
    },
  });
  const ok = await waitUntil(() => logs.filter((l) => l.includes('STEPPING')).length >= workers, 120_000);
  expect(ok, `workers never started stepping:\n${logs.slice(-20).join('\n')}`).to.equal(true);
  return { handle, submitPid, logs };
}

function nodePid(handle: TFClusterHandle, job: string, index: number): number {
  const n = [...handle.nodes.values()].find((x) => x.job === job && x.taskIndex === index);
  if (!n) throw new Error(`no ${job}:${index} in the cluster`);
  return n.pid;
}

/** Waits for the failure; returns it and the seconds it took from `since`. */
async function failure(handle: TFClusterHandle, since: number): Promise<{ err: Error; seconds: number }> {
  const err = await handle.shutdown({ timeout: 300 }).then(
    () => new Error('the cluster finished instead of failing'),
    (e: Error) => e,
  );
  return { err, seconds: (Date.now() - since) / 1000 };
}

/** Nothing of this cluster left: no trainer, nothing in spark-submit's process group. */
async function nothingLeft(handle: TFClusterHandle, submitPid: number): Promise<void> {
  const pids = [...handle.nodes.values()].map((n) => n.pid);
  const gone = await waitUntil(() => pids.every((p) => !isAlive(p)) && (!submitPid || groupMembers(submitPid).length === 0), 60_000);
  expect(
    gone,
    `left behind: trainers ${pids.filter(isAlive).join(',') || '-'}, spark-submit group ${groupMembers(submitPid).join(',') || '-'}`,
  ).to.equal(true);
}

describe('faults end cleanly (embedded local Spark)', function () {
  this.timeout(START_MS + 120_000);

  it('a trainer killed (SIGKILL) mid-training fails the cluster naming it', async () => {
    const { handle, submitPid } = await startStepping({ args: { mode: 'allreduce' } }, 2);
    const victim = nodePid(handle, 'worker', 0);
    const since = Date.now();
    process.kill(victim, 'SIGKILL');
    const { err, seconds } = await failure(handle, since);
    expect(err).to.be.instanceOf(ClusterFailedError);
    expect(err.message).to.match(/worker:0/);
    console.log(`      (trainer SIGKILL → "${err.message.split('\n')[0].slice(0, 140)}" after ${seconds.toFixed(1)} s)`);
    await nothingLeft(handle, submitPid);
  });

  it('a hung trainer (SIGSTOP) fails the cluster naming it, within the collective timeout', async () => {
    const { handle, submitPid } = await startStepping({ args: { mode: 'allreduce', timeoutMs: 8000 } }, 2);
    const victim = nodePid(handle, 'worker', 0);
    const since = Date.now();
    process.kill(victim, 'SIGSTOP');
    try {
      const { err, seconds } = await failure(handle, since);
      expect(err).to.be.instanceOf(ClusterFailedError);
      expect(err.message).to.match(/worker:0/);
      console.log(`      (trainer SIGSTOP → "${err.message.split('\n')[0].slice(0, 140)}" after ${seconds.toFixed(1)} s)`);
      // The stopped trainer is killed with its task's process group.
      await nothingLeft(handle, submitPid);
    } finally {
      if (isAlive(victim)) process.kill(victim, 'SIGKILL');
    }
  });

  it('a ps node killed fails the workers and the cluster naming ps:0', async () => {
    const { handle, submitPid } = await startStepping({ numExecutors: 3, numPs: 1, args: { mode: 'ps' } }, 2);
    const since = Date.now();
    process.kill(nodePid(handle, 'ps', 0), 'SIGKILL');
    const { err, seconds } = await failure(handle, since);
    expect(err).to.be.instanceOf(ClusterFailedError);
    expect(err.message).to.match(/ps:0/);
    console.log(`      (ps SIGKILL → "${err.message.split('\n')[0].slice(0, 140)}" after ${seconds.toFixed(1)} s)`);
    await nothingLeft(handle, submitPid);
  });
});
