/**
 * Collectives between in-process nodes over real loopback TCP: exact results of allReduce
 * (sum, mean) and broadcast for odd sizes on 2-4 workers, barrier, call-order checks, and the
 * failure modes (peer closed, killed, stalled, absent; wrong secret) ending in bounded time with
 * an error naming the peer.
 */
import { expect } from 'chai';
import { ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import { fakeCluster, FakeCluster } from '../fixtures/distributed/fake-cluster';
import { reduceBuffer } from '../../lib/node/distributed/float-kernels';

const CHILD = path.resolve(__dirname, '../../../test/fixtures/distributed/child-node.js');

function randomInts(n: number, seed: number): Float32Array {
  // Integers in [-1000, 1000]: every sum of up to 4 of them is exact in float32.
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = (x % 2001) - 1000;
  }
  return a;
}

async function settle<T>(p: Promise<T>): Promise<Error | T> {
  return p.then(
    (v) => v,
    (e: Error) => e,
  );
}

describe('distributed collectives (in-process nodes, loopback TCP)', function () {
  this.timeout(120_000);
  let cluster: FakeCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  for (const n of [2, 3, 4]) {
    it(`allReduce sum and mean are exact on ${n} workers for sizes 1, 7 and 1 000 003`, async () => {
      cluster = await fakeCluster({ numWorkers: n });
      const { workers } = await cluster.start({ timeoutMs: 20_000, chunkBytes: n === 3 ? 64 << 10 : undefined });
      expect(workers.map((w) => w.rank)).to.deep.equal([...Array(n).keys()]);
      for (const size of [1, 7, 1_000_003]) {
        const inputs = workers.map((_, r) => randomInts(size, 17 + r * 7919 + size));
        const expected = new Float32Array(size);
        for (const a of inputs) for (let i = 0; i < size; i++) expected[i] += a[i];
        const sums = await Promise.all(workers.map((w, r) => w.allReduce(inputs[r].slice(), 'sum')));
        for (const s of sums) expect(Buffer.from(s.buffer).equals(Buffer.from(expected.buffer)), `sum of ${size} on ${n}`).to.equal(true);
        const means = await Promise.all(workers.map((w, r) => w.allReduce(inputs[r].slice(), 'mean')));
        const expMean = expected.map((v) => Math.fround(v / n));
        for (const m of means) expect(Buffer.from(m.buffer).equals(Buffer.from(expMean.buffer)), `mean of ${size} on ${n}`).to.equal(true);
        // Buffers in the kernel's memory (as the distributed optimizer's) sum in place to the same floats.
        const own = await Promise.all(
          workers.map((w, r) => {
            const b = reduceBuffer(size);
            b.set(inputs[r]);
            return w.allReduce(b, 'sum');
          }),
        );
        for (const s of own)
          expect(
            Buffer.from(s.buffer, s.byteOffset, s.byteLength).equals(Buffer.from(expected.buffer)),
            `reduceBuffer sum of ${size} on ${n}`,
          ).to.equal(true);
      }
    });
  }

  it('broadcast copies the root buffer to every worker (any root, odd sizes, small chunks)', async () => {
    cluster = await fakeCluster({ numWorkers: 3 });
    const { workers } = await cluster.start({ timeoutMs: 20_000, chunkBytes: 4000 });
    for (const root of [0, 2]) {
      for (const size of [1, 7, 100_003]) {
        const src = randomInts(size, root * 31 + size);
        const bufs = workers.map((_, r) => (r === root ? src.slice() : new Float32Array(size)));
        const out = await Promise.all(workers.map((w, r) => w.broadcast(bufs[r], root)));
        for (const o of out) expect(Buffer.from(o.buffer).equals(Buffer.from(src.buffer))).to.equal(true);
      }
    }
  });

  it('barrier waits for the last worker; calls issued together run in order', async () => {
    cluster = await fakeCluster({ numWorkers: 3 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    // Workers 0 and 1 wait in the barrier while worker 2 is held back; none may pass before it enters.
    const events: string[] = [];
    let lateEntered = false;
    let releaseLate!: () => void;
    const late = new Promise<void>((res) => (releaseLate = res));
    const all = Promise.all(
      workers.map(async (w, r) => {
        if (r === 2) {
          await late;
          lateEntered = true;
        }
        await w.barrier();
        events.push(`${r}@${lateEntered ? 'after' : 'before'}`);
      }),
    );
    // Give the early two every chance to (wrongly) pass: a round of I/O and timers.
    await new Promise((res) => setTimeout(res, 200));
    expect(events, 'passed the barrier before the last worker entered').to.deep.equal([]);
    releaseLate();
    await all;
    expect(
      events.every((e) => e.endsWith('after')),
      events.join(),
    ).to.equal(true);
    // Several collectives in flight at once, without awaiting each: same order everywhere.
    const results = await Promise.all(
      workers.map((w, r) =>
        Promise.all([
          w.allReduce(Float32Array.of(r), 'sum'),
          w.barrier(),
          w.broadcast(Float32Array.of(r * 10), 1),
          w.allReduce(Float32Array.of(1, 2), 'mean'),
        ]),
      ),
    );
    for (const [a, , b, c] of results) {
      expect(Array.from(a)).to.deep.equal([3]);
      expect(Array.from(b)).to.deep.equal([10]);
      expect(Array.from(c)).to.deep.equal([1, 2]);
    }
  });

  it('a single worker reduces to itself; ps nodes are not part of collectives', async () => {
    cluster = await fakeCluster({ numWorkers: 1, numPs: 1 });
    const { workers, ps } = await cluster.start();
    expect(Array.from(await workers[0].allReduce(Float32Array.of(1, 2, 3), 'mean'))).to.deep.equal([1, 2, 3]);
    await workers[0].barrier();
    expect(ps[0].rank).to.equal(-1);
    expect(() => ps[0].allReduce(new Float32Array(1))).to.throw(/ps:0 .* is not a worker/);
  });

  it('different buffer lengths fail on every worker, naming the peer', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 5000 });
    const errs = await Promise.all(workers.map((w, r) => settle(w.allReduce(new Float32Array(r ? 10 : 12)))));
    expect((errs[0] as Error).message).to.match(/worker:0 127\.0\.0\.1:\d+ passed 10 floats to allReduce #1, this worker 12/);
    expect((errs[1] as Error).message).to.match(/chief:0 127\.0\.0\.1:\d+ passed 12 floats/);
    // The group stays broken: later calls fail at once with the same error.
    expect(((await settle(workers[0].barrier())) as Error).message).to.equal((errs[0] as Error).message);
  });

  it('a worker that closes its server mid-allReduce fails the others at once, naming it', async function () {
    // The collective timeout is 10 minutes: only the closed connection can end this within the test's.
    this.timeout(60_000);
    cluster = await fakeCluster({ numWorkers: 3 });
    const { workers } = await cluster.start({ timeoutMs: 600_000, chunkBytes: 16 << 10 });
    await Promise.all(workers.map((w) => w.allReduce(new Float32Array(10))));
    const pending = workers.slice(0, 2).map((w) => settle(w.allReduce(new Float32Array(4_000_000).fill(1))));
    const third = settle(workers[2].allReduce(new Float32Array(4_000_000).fill(1)));
    // All three have entered the collective (4 M floats cannot finish synchronously): worker 2 leaves.
    void workers[2].close('test closes it');
    const errs = (await Promise.all(pending)) as Error[];
    for (const e of errs) {
      expect(e).to.be.instanceOf(Error);
      expect(e.message, e.message).to.match(/worker:1 127\.0\.0\.1:\d+ (left|closed the connection|failed \(E)/);
      expect((e as { peer?: string }).peer).to.match(/^worker:1 /);
    }
    expect(((await third) as Error).message).to.match(/test closes it/);
  });

  it('a worker that never enters the collective fails the others after the timeout, naming it', async () => {
    cluster = await fakeCluster({ numWorkers: 3 });
    const { workers } = await cluster.start({ timeoutMs: 1500 });
    await Promise.all(workers.map((w) => w.barrier()));
    // The message is the timeout path's own ("within 1.5 s"): not an earlier failure of another kind.
    const errs = (await Promise.all(workers.slice(0, 2).map((w) => settle(w.allReduce(new Float32Array(1000)))))) as Error[];
    for (const e of errs)
      expect(e.message).to.match(/worker:1 127\.0\.0\.1:\d+ \(at collective #1\) did not enter allReduce #2 within 1\.5 s/);
  });

  it('rejects a peer with the wrong secret on both sides, without sending the secret', async () => {
    cluster = await fakeCluster({ numWorkers: 2, secrets: { 'worker:0': 'not-the-secret' } });
    const { workers } = await cluster.start({ timeoutMs: 3000, connectTimeoutMs: 3000 });
    const errs = (await Promise.all(workers.map((w) => settle(w.allReduce(new Float32Array(4)))))) as Error[];
    // The dialer fails at once; the acceptor ignores the impostor (anyone can claim a name) and
    // fails only when the real peer never came, saying what it saw.
    expect(errs[0].message).to.match(
      /worker:0 127\.0\.0\.1:\d+ did not connect within 3\.0 s; a connection claiming to be worker:0 127\.0\.0\.1:\d+ failed authentication/,
    );
    expect(errs[1].message).to.match(/authentication with chief:0 127\.0\.0\.1:\d+ failed/);
  });

  it('each pair of workers holds two connections, one per direction: every worker is dialed once by each peer', async () => {
    cluster = await fakeCluster({ numWorkers: 3 });
    const accepted = cluster.nodes.map((n) => {
      const socks: Array<import('node:net').Socket> = [];
      n.listener!.on('connection', (s: import('node:net').Socket) => socks.push(s));
      return socks;
    });
    const { workers } = await cluster.start({ timeoutMs: 10_000 });
    const out = await Promise.all(workers.map((w, r) => w.allReduce(Float32Array.of(r, 1), 'sum')));
    for (const o of out) expect([...o]).to.deep.equal([3, 3]);
    // Each worker receives on the connections it dialed, so each listener kept one per peer.
    for (const socks of accepted) expect(socks.filter((s) => !s.destroyed)).to.have.length(2);
  });

  it('either connection of a pair closing fails the group on both workers, naming the peer', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const atChief: Array<import('node:net').Socket> = [];
    cluster.nodes[0].listener!.on('connection', (s: import('node:net').Socket) => atChief.push(s));
    const { workers } = await cluster.start({ timeoutMs: 10_000 });
    await Promise.all(workers.map((w) => w.allReduce(Float32Array.of(1), 'sum')));
    // The connection worker:0 dialed: worker:0 receives on it, the chief sends on it.
    atChief.find((s) => !s.destroyed)!.destroy();
    const errs = (await Promise.all(workers.map((w) => settle(w.allReduce(Float32Array.of(1), 'sum'))))) as Error[];
    expect(errs[0]).to.be.instanceOf(Error);
    expect(errs[0].message).to.match(/worker:0 127\.0\.0\.1:\d+/);
    expect(errs[1]).to.be.instanceOf(Error);
    expect(errs[1].message).to.match(/chief:0 127\.0\.0\.1:\d+ closed the connection/);
  });

  it('refuses a peer speaking wire version 1 (one connection per pair), naming both versions', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    await cluster.start({ timeoutMs: 10_000, log: () => undefined });
    const net = await import('node:net');
    const { encodeHello } = await import('../../lib/node/distributed/auth');
    const { Channel, encodeHeader, FrameType, HEADER_BYTES } = await import('../../lib/node/distributed/wire');
    const hello = encodeHello(Channel.COLLECTIVE, { job: 'worker', index: 0 }, { job: 'chief', index: 0 });
    hello.writeUInt8(1, 8);
    const port = Number(cluster.spec.chief![0].split(':')[1]);
    const reply = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat([encodeHeader(FrameType.HELLO, {}, hello.length), hello])));
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('close', () => resolve(Buffer.concat(chunks)));
      s.on('error', () => undefined);
    });
    expect(reply.readUInt8(0)).to.equal(FrameType.ERROR);
    expect(reply.subarray(HEADER_BYTES).toString('utf8')).to.equal('wire version 1 is not supported (this node speaks 2)');
  });

  it('ignores garbage connections on the shared listener', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 5000 });
    const net = await import('node:net');
    const addr = cluster.spec.chief![0].split(':');
    await new Promise<void>((resolve) => {
      const s = net.connect(Number(addr[1]), addr[0], () => s.write(Buffer.alloc(5000, 7)));
      s.on('close', () => resolve());
      s.on('error', () => undefined);
    });
    const out = await Promise.all(workers.map((w) => w.allReduce(Float32Array.of(1, 2), 'sum')));
    expect(Array.from(out[0])).to.deep.equal([2, 4]);
  });

  describe('with a worker in a child process', () => {
    let child: ChildProcess | undefined;
    afterEach(() => {
      child?.kill('SIGKILL');
      child = undefined;
    });

    async function withChild(timeoutMs: number) {
      child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const port = await new Promise<number>((r) => child!.once('message', (m: { port: number }) => r(m.port)));
      cluster = await fakeCluster({ numWorkers: 3, external: { 'worker:1': `127.0.0.1:${port}` } });
      const size = 2_000_000;
      child.send({ spec: cluster.spec, job: 'worker', index: 1, secret: cluster.secret, opts: { timeoutMs, chunkBytes: 64 << 10 }, size });
      const { workers } = await cluster.start({ timeoutMs, chunkBytes: 64 << 10 });
      const firstDone = new Promise<void>((r) => child!.on('message', (m: { done?: number }) => m.done === 0 && r()));
      const first = await Promise.all(workers.map((w) => w.allReduce(new Float32Array(size).fill(1))));
      expect(first[0][size - 1]).to.equal(3);
      await firstDone;
      return { workers, size };
    }

    it('a worker killed (SIGKILL) mid-allReduce fails the others at once, naming it', async function () {
      // The collective timeout is 10 minutes: only the dropped connection can end this within the test's.
      this.timeout(60_000);
      const { workers, size } = await withChild(600_000);
      const pending = workers.map((w) => settle(w.allReduce(new Float32Array(size).fill(1))));
      // The child runs its second allReduce of 2 M floats as soon as its first is done (see withChild).
      child!.kill('SIGKILL');
      const errs = (await Promise.all(pending)) as Error[];
      for (const e of errs) {
        expect(e).to.be.instanceOf(Error);
        expect(e.message, e.message).to.match(
          /worker:1 127\.0\.0\.1:\d+ closed the connection|connection to worker:1 127\.0\.0\.1:\d+ failed/,
        );
      }
    });

    it('a stalled worker (SIGSTOP) fails the others within the timeout, naming it', async () => {
      const { workers, size } = await withChild(2000);
      child!.kill('SIGSTOP');
      const errs = (await Promise.all(workers.map((w) => settle(w.allReduce(new Float32Array(size).fill(1)))))) as Error[];
      for (const e of errs) expect(e.message).to.match(/worker:1 127\.0\.0\.1:\d+/);
      expect(errs.some((e) => /no sign of life from worker:1/.test(e.message))).to.equal(true);
      child!.kill('SIGCONT');
    });
  });
});
