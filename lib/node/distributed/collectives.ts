/**
 * Collectives between the workers (chief + workers, ordered by workerNum) over a full mesh of
 * direct TCP links: ring all-reduce (reduce-scatter then all-gather, chunked and pipelined),
 * chain broadcast (pipelined), barrier.
 *
 * Each pair of workers holds two connections, one per direction: a worker receives a peer's data
 * on the connection it dialed to that peer (its `rx` link) and sends on the one the peer dialed
 * (its `tx` link). Dialed sockets read into one reused buffer, which costs a fraction of Node's
 * default reading (auth.ts, DIALED_READ_BYTES); the socket API offers that only to the dialer.
 *
 * Every worker must call the collectives in the same order; each call gets the next sequence
 * number, carried in every frame and checked on receipt. Calls made concurrently run one after
 * another in call order. A failure (peer gone, stalled, mismatched call) breaks the group: the
 * failing call and every later one reject with an error naming the peer.
 */
import type { Established } from './auth';
import { dialWithRetry } from './dial';
import { Link } from './link';
import type { PeerGroup } from './group';
import { DistributedError, peerName, PeerId } from './peers';
import { addBytesInto, addInto, divideRange, stagingFor } from './float-kernels';
import { Channel, floatBytes, Frame, FrameHeader, FrameType, PayloadSink, payloadFloats } from './wire';

export type ReduceOp = 'sum' | 'mean';

const OP = { allReduce: 1, broadcast: 2, barrier: 3 } as const;
const OP_NAMES: Record<number, string> = { 1: 'allReduce', 2: 'broadcast', 3: 'barrier' };

class Op {
  readonly started = Date.now();
  lastProgress = Date.now();
  waitingOn?: Link;
  readonly failed: Promise<never>;
  reject!: (e: Error) => void;

  constructor(
    readonly seq: number,
    readonly name: string,
  ) {
    this.failed = new Promise<never>((_, rej) => (this.reject = rej));
    this.failed.catch(() => undefined);
  }
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** The two connections with one peer: `rx` we dialed and receive on, `tx` the peer dialed and we send on. */
interface PeerLinks {
  rx?: Link;
  tx?: Link;
}

type Direction = keyof PeerLinks;

export class Collectives {
  readonly rank: number;
  readonly size: number;
  private readonly peers: PeerId[];
  private readonly links = new Map<number, PeerLinks>();
  private readonly arrivals = new Map<number, Waiter>();
  private readonly authFailures = new Map<number, string>();
  private seq = 0;
  /** Sequence number of the last collective this worker entered (sent in heartbeats). */
  private position = 0;
  private chain: Promise<unknown> = Promise.resolve();
  /** Local work in progress (whileBusy), announced in heartbeats. */
  private busyCount = 0;
  private broken?: DistributedError;
  private mesh?: Promise<void>;
  private current?: Op;

  constructor(private readonly node: PeerGroup) {
    this.peers = node.workers;
    this.rank = node.self.rank;
    this.size = node.workers.length;
  }

  private get chunkElems(): number {
    return Math.max(1, Math.floor(this.node.opts.chunkBytes / 4));
  }

  // ---- mesh -------------------------------------------------------------------------------

  /** A peer's connection passed the handshake on our listener: this worker's tx link to it. */
  adoptIncoming(peer: PeerId, est: Established): void {
    this.adopt(peer, est, 'tx');
  }

  /**
   * Someone claiming to be `peer` failed authentication on our listener. Anyone can claim any
   * name, so this never fails the group: it is only remembered to explain a peer that then
   * never connects.
   */
  authFailed(peer: PeerId, why: string): void {
    this.authFailures.set(
      peer.rank,
      `a connection claiming to be ${peerName(peer)} failed authentication: ${why} (different cluster secret?)`,
    );
  }

  private adopt(peer: PeerId, est: Established, dir: Direction): Link {
    const link = new Link(peer, est, {
      pingMs: this.node.opts.pingMs,
      position: () => this.position,
      busy: () => this.busyCount > 0,
      onClose: (err, l) => this.onLinkClose(err, l, dir),
    });
    let pair = this.links.get(peer.rank);
    if (!pair) this.links.set(peer.rank, (pair = {}));
    const old = pair[dir];
    pair[dir] = link;
    if (old && !old.closed) old.destroy(new DistributedError(`replaced by a newer connection from ${link.name}`, link.name));
    const w = dir === 'tx' ? this.arrivals.get(peer.rank) : undefined;
    if (w) {
      this.arrivals.delete(peer.rank);
      w.resolve();
    }
    return link;
  }

  private onLinkClose(err: DistributedError, link: Link, dir: Direction): void {
    if (this.links.get(link.peer.rank)?.[dir] !== link) return;
    if (this.current) this.breakWith(err, this.current);
    else if (!this.broken) this.broken = err;
  }

  private allLinks(): Link[] {
    const out: Link[] = [];
    for (const { rx, tx } of this.links.values()) {
      if (rx) out.push(rx);
      if (tx) out.push(tx);
    }
    return out;
  }

  private ensureMesh(): Promise<void> {
    this.mesh ??= this.connectAll();
    return this.mesh;
  }

  private async connectAll(): Promise<void> {
    const deadline = Date.now() + this.node.opts.connectTimeoutMs;
    const tasks = this.peers.filter((p) => p.rank !== this.rank).flatMap((p) => [this.dial(p, deadline), this.awaitPeer(p, deadline)]);
    const results = await Promise.allSettled(tasks);
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    if (errors.length) {
      const peer = errors.map((e) => (e as DistributedError).peer).find(Boolean);
      throw new DistributedError(
        `${this.node.selfName} could not connect to every worker: ${errors.map((e) => e.message).join('; ')}`,
        peer,
      );
    }
  }

  private async dial(p: PeerId, deadline: number): Promise<void> {
    await dialWithRetry(
      this.node.dialOptions(Channel.COLLECTIVE, p),
      deadline,
      (est) => this.adopt(p, est, 'rx'),
      () => this.broken ?? this.node.closedError,
    );
  }

  private awaitPeer(p: PeerId, deadline: number): Promise<void> {
    const link = this.links.get(p.rank)?.tx;
    if (link && !link.closed) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.arrivals.delete(p.rank);
          const failure = this.authFailures.get(p.rank);
          const why = failure ? `; ${failure}` : ' (not running, or it never called startClusterServer / a collective?)';
          reject(
            new DistributedError(
              `${peerName(p)} did not connect within ${(this.node.opts.connectTimeoutMs / 1000).toFixed(1)} s${why}`,
              peerName(p),
            ),
          );
        },
        Math.max(0, deadline - Date.now()),
      );
      timer.unref();
      this.arrivals.set(p.rank, {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  // ---- running one collective -------------------------------------------------------------

  private run<T>(name: string, body: (op: Op) => Promise<T>): Promise<T> {
    const seq = ++this.seq;
    const p = this.chain.then(() => this.exec(seq, name, body));
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async exec<T>(seq: number, name: string, body: (op: Op) => Promise<T>): Promise<T> {
    const closed = this.node.closedError;
    if (closed) throw closed;
    if (this.broken) throw this.broken;
    const op = new Op(seq, name);
    if (this.size === 1) return body(op);
    try {
      await this.ensureMesh();
    } catch (err) {
      throw this.breakWith(err as Error, op);
    }
    this.current = op;
    this.position = seq;
    const watchMs = Math.max(10, Math.min(1000, this.node.opts.timeoutMs / 4));
    const timer = setInterval(() => this.watch(op), watchMs);
    timer.unref();
    try {
      return await Promise.race([body(op), op.failed]);
    } catch (err) {
      throw this.breakWith(err as Error, op);
    } finally {
      clearInterval(timer);
      this.current = undefined;
    }
  }

  private breakWith(err: Error, op: Op): DistributedError {
    if (!this.broken) {
      const peer = (err as DistributedError).peer;
      const prefix = `${op.name} #${op.seq} on ${this.node.selfName} failed: `;
      this.broken = new DistributedError(err.message.startsWith(prefix) ? err.message : prefix + err.message, peer);
      for (const l of this.allLinks()) l.failWaiters(this.broken);
    }
    op.reject(this.broken);
    return this.broken;
  }

  /** Fails the running collective when a peer shows no sign of life or nothing moves. */
  private watch(op: Op): void {
    const now = Date.now();
    const limit = this.node.opts.timeoutMs;
    const secs = (limit / 1000).toFixed(1);
    for (const l of this.allLinks()) {
      if (now - Math.max(l.lastHeard, op.started) > limit) {
        this.breakWith(new DistributedError(`no sign of life from ${l.name} for ${secs} s: it is stalled, hung or cut off`, l.name), op);
        return;
      }
    }
    if (now - op.lastProgress > limit) {
      // One entry per peer: the connection with its latest report (both carry its heartbeats).
      const behind = [...this.links.values()]
        .map(({ rx, tx }) => [rx, tx].filter((l) => l !== undefined).reduce((a, b) => (b.peerPosition > a.peerPosition ? b : a)))
        .filter((l) => l.peerPosition < op.seq);
      // A peer that says it is busy with local work (whileBusy) is late, not stalled.
      if (behind.length && behind.every((l) => l.peerBusy)) {
        op.lastProgress = now;
        return;
      }
      const msg = behind.length
        ? `${behind.map((l) => `${l.name} (at collective #${l.peerPosition})`).join(', ')} did not enter ${op.name} #${op.seq} within ${secs} s`
        : `no data from ${op.waitingOn?.name ?? 'the other workers'} for ${secs} s`;
      this.breakWith(new DistributedError(msg, behind[0]?.name ?? op.waitingOn?.name), op);
    }
  }

  /** Checks that a received frame belongs to this collective; returns its float count. */
  private check(op: Op, f: Frame, from: Link, type: number, code: number, total: number, at: number, end: number): number {
    if (f.type !== type || f.aux !== code || f.seq !== op.seq) {
      const theirs =
        f.type === FrameType.BARRIER || f.type === FrameType.DATA
          ? `${OP_NAMES[f.aux & 0xff] ?? 'unknown'} #${f.seq}`
          : `frame type ${f.type}`;
      const root =
        code >> 8 !== f.aux >> 8 && (code & 0xff) === OP.broadcast && (f.aux & 0xff) === OP.broadcast
          ? ` with root ${f.aux >> 8} (this worker: root ${code >> 8})`
          : '';
      throw new DistributedError(
        `${from.name} is running ${theirs}${root} while this worker runs ${op.name} #${op.seq}: every worker must call the same collectives in the same order`,
        from.name,
      );
    }
    if (f.total !== total) {
      throw new DistributedError(
        `${from.name} passed ${f.total} floats to ${op.name} #${op.seq}, this worker ${total}: buffers must have the same length on every worker`,
        from.name,
      );
    }
    const n = (f.sunk ?? f.payload.length) / 4;
    if (f.offset !== at || at + n > end || n === 0 || !Number.isInteger(n)) {
      throw new DistributedError(
        `${from.name} sent floats [${f.offset}, ${f.offset + n}) where [${at}, ${end}) was due in ${op.name} #${op.seq}`,
        from.name,
      );
    }
    op.lastProgress = Date.now();
    return n;
  }

  /** The connection to send to `rank` on (tx) or to receive from it on (rx). */
  private linkWith(rank: number, dir: Direction): Link {
    const l = this.links.get(rank)?.[dir];
    if (!l) throw new DistributedError(`no connection to ${peerName(this.peers[rank])}`, peerName(this.peers[rank]));
    return l;
  }

  /**
   * Sends buf[from, to_) in equal chunks of at most chunkBytes: a short trailing chunk per segment
   * (1 MiB, 1 MiB, 40 KiB) cost a 1.07 M-float all-reduce on 2 workers 1–2 ms more than equal ones.
   */
  private sendRange(to: Link, op: Op, code: number, buf: Float32Array, from: number, to_: number): void {
    const parts = Math.max(1, Math.ceil((to_ - from) / this.chunkElems));
    const step = Math.ceil((to_ - from) / parts);
    for (let a = from; a < to_; a += step) {
      const b = Math.min(to_, a + step);
      to.send(FrameType.DATA, { seq: op.seq, total: buf.length, offset: a, aux: code }, floatBytes(buf.subarray(a, b)));
    }
  }

  // ---- the collectives --------------------------------------------------------------------

  /**
   * Sums (or averages) `buf` element-wise across all workers, in place; resolves to `buf` once
   * it holds the result (identical on every worker). Do not touch `buf` until then. If it
   * rejects, the group is broken and `buf` holds partial sums; the rest of a frame already on
   * its way may still land in it shortly after, so do not reuse it for other data.
   */
  allReduce(buf: Float32Array, op: ReduceOp = 'sum'): Promise<Float32Array> {
    if (!(buf instanceof Float32Array)) return Promise.reject(new TypeError('allReduce takes a Float32Array'));
    if (op !== 'sum' && op !== 'mean') return Promise.reject(new TypeError(`allReduce op must be 'sum' or 'mean', not '${String(op)}'`));
    if (buf.length > 0xffffffff) return Promise.reject(new RangeError('allReduce buffers are limited to 2^32-1 floats'));
    return this.run('allReduce', async (o) => {
      if (this.size > 1) await this.ring(o, buf, op === 'mean');
      return buf;
    });
  }

  /**
   * Ring all-reduce in place. What `prev` sends is known in advance (step k: segment r−1−k,
   * reduced into buf during reduce-scatter, copied during all-gather), so a RingReceiver takes
   * each frame's payload straight from the socket into `buf` as it arrives: no payload buffers,
   * no copy before reducing, and reduction overlaps the transfer of the rest of the chunk. This
   * loop then only forwards completed chunks. With `mean`, each worker divides the one segment
   * it completes, before the all-gather passes it on.
   */
  private async ring(op: Op, buf: Float32Array, mean: boolean): Promise<void> {
    const N = this.size;
    const r = this.rank;
    const L = buf.length;
    const next = this.linkWith((r + 1) % N, 'tx');
    const prev = this.linkWith((r - 1 + N) % N, 'rx');
    const code = OP.allReduce;
    const seg = (k: number): [number, number] => {
      const m = ((k % N) + N) % N;
      return [Math.floor((m * L) / N), Math.floor(((m + 1) * L) / N)];
    };
    const steps = 2 * N - 2;
    const schedule: RingStep[] = Array.from({ length: steps }, (_, k) => {
      const [s, e] = seg(r - 1 - k);
      return { s, e, reduce: k < N - 1 };
    });
    const receiver = new RingReceiver(buf, schedule, op.seq, code);
    // Frames the peer sent before this worker got here are buffered already: the receiver starts after them.
    receiver.skip(prev.bufferedPayloadBytes((f) => f.type === FrameType.DATA && f.seq === op.seq) / 4);
    prev.route = (h) => receiver.route(h);
    try {
      const [s0, e0] = seg(r);
      this.sendRange(next, op, code, buf, s0, e0);
      for (let k = 0; k < steps; k++) {
        const { s, e, reduce } = schedule[k];
        const forward = k < steps - 1;
        const completes = mean && k === N - 2;
        for (let a = s; a < e;) {
          op.waitingOn = prev;
          const f = await prev.recv();
          const n = this.check(op, f, prev, FrameType.DATA, code, L, a, e);
          if (f.sunk === undefined) {
            const src = payloadFloats(f.payload);
            if (reduce) addInto(buf, a, src, n);
            else buf.set(src, a);
          }
          if (completes) {
            divideRange(buf, a, a + n, N);
          }
          if (forward) next.send(FrameType.DATA, { seq: op.seq, total: L, offset: a, aux: code }, floatBytes(buf.subarray(a, a + n)));
          a += n;
        }
      }
      // Frames reference buf: resolve only once the kernel has them all.
      await next.flushed();
    } finally {
      prev.route = undefined;
    }
  }

  /** Copies `root`'s `buf` into every worker's `buf` (same length everywhere); resolves to `buf`. */
  broadcast(buf: Float32Array, root = 0): Promise<Float32Array> {
    if (!(buf instanceof Float32Array)) return Promise.reject(new TypeError('broadcast takes a Float32Array'));
    if (!Number.isInteger(root) || root < 0 || root >= this.size)
      return Promise.reject(new RangeError(`broadcast root ${root} is not a worker rank (0..${this.size - 1})`));
    return this.run('broadcast', async (op) => {
      if (this.size === 1) return buf;
      const N = this.size;
      const r = this.rank;
      const pos = (r - root + N) % N;
      const code = OP.broadcast | (root << 8);
      const next = this.linkWith((r + 1) % N, 'tx');
      if (pos === 0) {
        this.sendRange(next, op, code, buf, 0, buf.length);
      } else {
        const prev = this.linkWith((r - 1 + N) % N, 'rx');
        const forward = pos < N - 1;
        for (let a = 0; a < buf.length;) {
          op.waitingOn = prev;
          const f = await prev.recv();
          const n = this.check(op, f, prev, FrameType.DATA, code, buf.length, a, buf.length);
          buf.set(payloadFloats(f.payload), a);
          if (forward)
            next.send(FrameType.DATA, { seq: op.seq, total: buf.length, offset: a, aux: code }, floatBytes(buf.subarray(a, a + n)));
          a += n;
        }
      }
      if (pos < N - 1) await next.flushed();
      return buf;
    });
  }

  /** Resolves once every worker has called barrier() (the same number of collectives earlier). */
  barrier(): Promise<void> {
    return this.run('barrier', async (op) => {
      const others = [...this.links.keys()];
      for (const rank of others) this.linkWith(rank, 'tx').send(FrameType.BARRIER, { seq: op.seq, aux: OP.barrier });
      for (const rank of others) {
        const l = this.linkWith(rank, 'rx');
        op.waitingOn = l;
        const f = await l.recv();
        if (f.type !== FrameType.BARRIER || f.seq !== op.seq || f.aux !== OP.barrier)
          this.check(op, f, l, FrameType.BARRIER, OP.barrier, 0, 0, 0);
        op.lastProgress = Date.now();
      }
    });
  }

  /**
   * Runs local work that may keep this worker out of collectives for longer than timeoutMs (a
   * chief-only checkpoint or evaluation): meanwhile its heartbeats say "busy", so peers waiting
   * in the next collective keep waiting instead of failing it as stalled. Heartbeats still stop
   * if the process hangs, which the peers detect as before.
   */
  async whileBusy<T>(work: () => Promise<T> | T): Promise<T> {
    this.busyCount++;
    try {
      return await work();
    } finally {
      this.busyCount--;
    }
  }

  /** Closes every link (peers see a clean goodbye); later calls reject with `reason`. */
  async close(reason: DistributedError): Promise<void> {
    if (!this.broken) this.broken = reason;
    this.current?.reject(reason);
    for (const w of this.arrivals.values()) w.reject(reason);
    this.arrivals.clear();
    await Promise.all(this.allLinks().map((l) => l.close(reason.message)));
  }
}

// ---- receiving in place ---------------------------------------------------------------------

interface RingStep {
  s: number;
  e: number;
  reduce: boolean;
}

/** Adds the float32 payload bytes arriving for buf[base…] into it, piece by piece (exported for tests). */
export class ReduceSink implements PayloadSink {
  private readonly carry = Buffer.alloc(4);
  private carryN = 0;

  constructor(
    private readonly buf: Float32Array,
    private readonly base: number,
  ) {}

  write(bytes: Buffer, at: number): void {
    let idx = this.base + Math.floor(at / 4);
    let pos = 0;
    if (this.carryN) {
      // A float split across socket chunks.
      pos = Math.min(4 - this.carryN, bytes.length);
      bytes.copy(this.carry, this.carryN, 0, pos);
      this.carryN += pos;
      if (this.carryN < 4) return;
      this.buf[idx++] += this.carry.readFloatLE(0);
      this.carryN = 0;
    }
    const n = (bytes.length - pos) >> 2;
    if (n) {
      addBytesInto(this.buf, idx, bytes.subarray(pos, pos + n * 4));
      pos += n * 4;
    }
    if (pos < bytes.length) {
      bytes.copy(this.carry, 0, pos);
      this.carryN = bytes.length - pos;
    }
  }

  /** Bytes are read into the sum's staging memory and added from there (no copy for a reduceBuffer). */
  stage(n: number): Buffer | undefined {
    return stagingFor(this.buf, n);
  }
}

/** Copies the payload bytes arriving for buf[base…] into place, or has a dialed socket read them there. */
export class CopySink implements PayloadSink {
  private readonly dst: Uint8Array;

  constructor(buf: Float32Array, base: number, floats: number) {
    this.dst = new Uint8Array(buf.buffer, buf.byteOffset + base * 4, floats * 4);
  }

  write(bytes: Buffer, at: number): void {
    this.dst.set(bytes, at);
  }

  place(at: number, n: number): Uint8Array {
    return this.dst.subarray(at, at + n);
  }
}

/**
 * Follows a ring all-reduce's schedule through the frames arriving from the previous worker and
 * gives each one that is exactly the next expected range a sink into `buf`. Anything else (a
 * frame of another collective, a mismatch) is buffered as usual, and the collective's checks
 * report it.
 */
class RingReceiver {
  private step = 0;
  private at: number;

  constructor(
    private readonly buf: Float32Array,
    private readonly schedule: RingStep[],
    private readonly seq: number,
    private readonly code: number,
  ) {
    this.at = schedule[0]?.s ?? 0;
  }

  private settle(): void {
    while (this.step < this.schedule.length && this.at >= this.schedule[this.step].e) {
      this.step++;
      this.at = this.schedule[this.step]?.s ?? 0;
    }
  }

  /** Moves past `floats` floats the ring loop takes from buffered frames. */
  skip(floats: number): void {
    for (let left = floats; ;) {
      this.settle();
      if (left <= 0 || this.step >= this.schedule.length) return;
      const take = Math.min(left, this.schedule[this.step].e - this.at);
      this.at += take;
      left -= take;
    }
  }

  route(h: FrameHeader): PayloadSink | undefined {
    if (h.type !== FrameType.DATA || h.seq !== this.seq || h.aux !== this.code || h.total !== this.buf.length || h.len % 4)
      return undefined;
    this.settle();
    if (this.step >= this.schedule.length) return undefined;
    const { e, reduce } = this.schedule[this.step];
    const n = h.len / 4;
    if (h.offset !== this.at || this.at + n > e) return undefined;
    const sink = reduce ? new ReduceSink(this.buf, this.at) : new CopySink(this.buf, this.at, n);
    this.at += n;
    return sink;
  }
}
