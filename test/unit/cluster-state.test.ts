/**
 * TFClusterHandle's state machine (lib/driver/cluster.ts) against a fake control server and a fake
 * Spark application: reserving → running → stopping → finished, and the one failure path every
 * fault takes — the first failure wins, names the node, tells every trainer and the launcher to
 * stop, kills the application, closes the server and removes the secret.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import { ClusterFailedError } from '../../lib/driver/cluster';
import { fakeCluster, FakeCluster } from '../support/fake-route';
import { rejection } from '../support/rejection';

/** Roles of a 3-node cluster with 1 ps: node 0 ps:0, node 1 chief:0, node 2 worker:0. */
const THREE = { numExecutors: 3, numPs: 1 };

/** The handle's error once it failed, after it released everything (kill() waits for that). */
async function failure(c: FakeCluster): Promise<ClusterFailedError> {
  const err = (await rejection(c.handle.shutdown({ timeout: 60 }))) as ClusterFailedError;
  expect(err).to.be.instanceOf(ClusterFailedError);
  await c.handle.kill();
  return err;
}

/** Everything a failed cluster must have let go of. */
function expectReleased(c: FakeCluster): void {
  expect(c.handle.state).to.equal('failed');
  expect(c.server.commands).to.deep.include({ type: 'shutdown', reason: 'cluster failed' });
  expect(c.app.killed).to.equal(1);
  expect(c.server.closed).to.equal(true);
  expect(fs.existsSync(c.tokenFile)).to.equal(false);
}

describe('TFClusterHandle state machine (fake route)', () => {
  it('reserves: once every node registered, each gets its role and the same cluster spec', async () => {
    const c = fakeCluster(THREE);
    expect(c.handle.state).to.equal('reserving');
    c.register(0);
    c.register(1);
    expect(c.handle.state).to.equal('reserving');
    c.register(2);
    await c.handle.waitReserved();
    expect(c.handle.state).to.equal('running');
    const ctxs = c.sockets.map((ws) => ws.sent.find((m) => m.type === 'cluster'));
    const roles = ctxs.map((m) => (m?.type === 'cluster' ? `${m.ctx.jobName}:${m.ctx.taskIndex}/${m.ctx.workerNum}` : undefined));
    expect(roles).to.deep.equal(['ps:0/-1', 'chief:0/0', 'worker:0/1']);
    for (const m of ctxs) expect(m?.type === 'cluster' && m.ctx.clusterSpec).to.deep.equal({ ps: ['127.0.0.1:9000'], worker: ['127.0.0.1:9002'], chief: ['127.0.0.1:9001'] });
    await c.handle.kill('test over');
  });

  it('finishes cleanly: workers return, ps nodes are told to stop, the launcher reports, results by node', async () => {
    const c = fakeCluster(THREE);
    const [ps, chief, worker] = c.registerAll();
    await c.handle.waitReserved();
    const done = c.handle.shutdown({ timeout: 60 });
    c.say(1, { type: 'result', value: 'chief done' });
    c.say(2, { type: 'result', value: 'worker done' });
    // Only once the workers are done does the ps node hear 'shutdown'.
    await new Promise((r) => setImmediate(r));
    expect(ps.types()).to.include('shutdown');
    expect(chief.types()).not.to.include('shutdown');
    expect(worker.types()).not.to.include('shutdown');
    c.say(0, { type: 'result', value: null });
    c.launcher({ type: 'nodes-finished', results: [] });
    c.app.end({ ok: true, detail: 'exit 0', logTail: '' });
    const results = await done;
    expect(c.handle.state).to.equal('finished');
    expect([...results.entries()]).to.deep.equal([[0, null], [1, 'chief done'], [2, 'worker done']]);
    expect(c.app.killed).to.equal(0);
    expect(fs.existsSync(c.tokenFile)).to.equal(false);
  });

  it("a node's error fails the cluster with its message and where it ran; the others are told to stop", async () => {
    const c = fakeCluster(THREE);
    const [ps, , worker] = c.registerAll();
    await c.handle.waitReserved();
    c.say(1, { type: 'error', message: 'loss is NaN' });
    const err = await failure(c);
    expect(err.message).to.equal('TF node chief:0 (node 1, executor e1 on 127.0.0.1) failed: loss is NaN');
    expect(ps.types()).to.include('shutdown');
    expect(worker.types()).to.include('shutdown');
    expectReleased(c);
  });

  it('the first failure wins: a later one does not replace its message', async () => {
    const c = fakeCluster(THREE);
    c.registerAll();
    await c.handle.waitReserved();
    c.say(2, { type: 'error', message: 'first' });
    c.launcher({ type: 'failed', error: 'second' });
    c.say(1, { type: 'error', message: 'third' });
    expect((await failure(c)).message).to.match(/worker:0 .* failed: first$/);
  });

  it('a node that disconnects without a result fails the cluster after the grace period, naming it', async () => {
    const c = fakeCluster({ ...THREE, lostNodeGraceMs: 20 });
    c.registerAll();
    await c.handle.waitReserved();
    c.drop(2);
    expect((await failure(c)).message).to.equal('TF node worker:0 (node 2, executor e2 on 127.0.0.1, pid 102) disconnected without reporting a result');
    expectReleased(c);
  });

  it('a node retried by Spark (higher attempt) replaces the earlier one, whose close is then no failure', async () => {
    const c = fakeCluster({ ...THREE, lostNodeGraceMs: 20 });
    c.registerAll();
    await c.handle.waitReserved();
    const first = c.sockets[2];
    const retry = c.register(2, 1);
    expect(first.closedWith?.reason).to.equal('replaced by a newer attempt');
    expect(retry.types()).to.deep.equal(['cluster']);
    c.drop(2, 0);
    await new Promise((r) => setTimeout(r, 60));
    expect(c.handle.state).to.equal('running');
    await c.handle.kill('test over');
  });

  it('the launcher reporting a failure fails the cluster with its text', async () => {
    const c = fakeCluster(THREE);
    c.register(0);
    c.launcher({ type: 'failed', error: 'reservation failed: the cluster needs 3 task slots at once, but Spark offered only 2' });
    expect((await failure(c)).message).to.match(/^reservation failed: the cluster needs 3 task slots/);
    expectReleased(c);
  });

  it('a reservation timeout names every node that never registered', async () => {
    const c = fakeCluster({ ...THREE, reservationTimeoutMs: 30 });
    c.register(1);
    const err = await rejection(c.handle.waitReserved());
    expect(err.message).to.equal(
      'reservation timed out after 0.03 s: 1 of 3 nodes registered; never registered: node 0 (ps:0), node 2 (worker:0) (the Spark application never reported starting)',
    );
    expect(c.handle.state).to.equal('failed');
  });

  it('the Spark application ending early fails the cluster with its detail and last output', async () => {
    const c = fakeCluster(THREE);
    c.registerAll();
    await c.handle.waitReserved();
    c.app.end({ ok: false, detail: 'spark-submit exited with code 1', logTail: 'java.lang.OutOfMemoryError' });
    const err = await failure(c);
    expect(err.message).to.equal('the Spark application ended before the cluster finished (spark-submit exited with code 1); its last output:\njava.lang.OutOfMemoryError');
  });

  it('a node registering after the cluster failed is turned away', async () => {
    const c = fakeCluster(THREE);
    c.register(0);
    await c.handle.kill('stopped by the test');
    expect(c.handle.error?.message).to.equal('stopped by the test');
    const late = c.register(1);
    expect(late.closedWith).to.deep.equal({ code: 1013, reason: 'cluster is no longer running' });
  });

  it('a message that cannot be sent to a node fails the cluster, naming the node', async () => {
    const c = fakeCluster(THREE);
    c.register(0);
    c.register(1);
    // Node 1's socket fails every send: the cluster spec cannot reach it.
    const original = c.sockets[1].send.bind(c.sockets[1]);
    c.sockets[1].send = (data: string, cb?: (err?: Error) => void) => {
      original(data);
      cb?.(new Error('socket hang up'));
    };
    c.register(2);
    const err = await failure(c);
    expect(err.message).to.equal("could not send 'cluster' to TF node chief:0 (node 1, executor e1 on 127.0.0.1): socket hang up");
  });
});
