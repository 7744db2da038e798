/**
 * One authenticated connection to a peer: frame I/O, heartbeats, and a clear error naming the
 * peer when it goes away. Collectives read frames in order with recv(); the ps service and client
 * take them through `deliver` instead.
 */
import type * as net from 'node:net';
import type { Established } from './auth';
import { DistributedError, peerName, PeerId } from './peers';
import { encodeHeader, Frame, FrameFields, FrameReader, FrameType, PayloadRouter } from './wire';

export interface LinkOptions {
  /** Interval of heartbeats (PING frames) sent to the peer. */
  pingMs: number;
  /** What this node reports in its heartbeats (collectives: the sequence number it is at). */
  position: () => number;
  /** True while this node is busy with local work between collectives (sent in heartbeats). */
  busy?: () => boolean;
  /** Takes every non-upkeep frame; when absent frames queue for recv(). */
  deliver?: (f: Frame) => void;
  onClose?: (err: DistributedError, link: Link) => void;
}

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

export class Link {
  readonly name: string;
  readonly socket: net.Socket;
  /** Time anything was last received from the peer (data or heartbeat). */
  lastHeard = Date.now();
  /** The position the peer last reported in a heartbeat. */
  peerPosition = 0;
  /** The peer's last heartbeat said it is busy with local work (a checkpoint, an evaluation). */
  peerBusy = false;
  closed = false;
  closeError?: DistributedError;
  /** The peer said goodbye (BYE) before closing. */
  leaving = false;
  private readonly queue: Frame[] = [];
  private readonly waiters: Array<Waiter<Frame>> = [];
  private pendingWrites = 0;
  private readonly drainWaiters: Array<Waiter<void>> = [];
  private readonly pingTimer: NodeJS.Timeout;
  private readonly socketClosed: Promise<void>;
  private readonly reader: FrameReader;

  constructor(
    readonly peer: PeerId,
    est: Established,
    private readonly opts: LinkOptions,
  ) {
    this.name = peerName(peer);
    this.socket = est.socket;
    this.socketClosed = new Promise<void>((r) => this.socket.once('close', () => r()));
    const reader = (this.reader = est.reader);
    reader.onFrame = (f) => this.onFrame(f);
    est.listen(
      () => (this.lastHeard = Date.now()),
      (err) => this.destroy(new DistributedError(`bad frame from ${this.name}: ${err.message}`, this.name)),
    );
    this.socket.on('error', (e: NodeJS.ErrnoException) => this.destroy(this.failure(e)));
    this.socket.on('close', () => {
      this.destroy(
        new DistributedError(
          this.leaving
            ? `${this.name} left: it closed its cluster server`
            : `${this.name} closed the connection: the process exited, crashed or was killed`,
          this.name,
        ),
      );
    });
    this.pingTimer = setInterval(() => {
      if (!this.closed && this.socket.writableLength < 4 << 20)
        this.trySend(FrameType.PING, { seq: this.opts.position(), aux: this.opts.busy?.() ? 1 : 0 });
    }, opts.pingMs);
    this.pingTimer.unref();
    for (const f of est.backlog) this.onFrame(f);
    if (this.socket.destroyed)
      this.destroy(new DistributedError(`${this.name} closed the connection right after the handshake`, this.name));
  }

  private failure(e: NodeJS.ErrnoException): DistributedError {
    return new DistributedError(
      this.leaving
        ? `${this.name} left: it closed its cluster server`
        : `connection to ${this.name} failed (${e.code ?? e.message}): the peer died or the network dropped`,
      this.name,
    );
  }

  set deliver(fn: ((f: Frame) => void) | undefined) {
    this.opts.deliver = fn;
  }

  private onFrame(f: Frame): void {
    if (f.type === FrameType.PING) {
      this.peerPosition = f.seq;
      this.peerBusy = f.aux === 1;
      return;
    }
    if (f.type === FrameType.BYE) {
      this.leaving = true;
      return;
    }
    if (this.opts.deliver) {
      this.opts.deliver(f);
      return;
    }
    const w = this.waiters.shift();
    if (w) w.resolve(f);
    else this.queue.push(f);
  }

  /**
   * Routes payloads of frames that arrive from now on to sinks (collectives receive in place);
   * undefined: back to buffered payloads.
   */
  set route(router: PayloadRouter | undefined) {
    this.reader.route = router;
  }

  /**
   * Payload bytes of frames already received or arriving whose payloads no sink takes, matching
   * `match`, in arrival order: what a router installed now will not see.
   */
  bufferedPayloadBytes(match: (f: Frame) => boolean): number {
    let n = 0;
    for (const f of this.queue) if (match(f)) n += f.payload.length;
    const cur = this.reader.inProgress();
    if (cur && cur.frame.payload.length && match(cur.frame)) n += cur.len;
    return n;
  }

  /** Next queued frame from the peer (collectives). */
  recv(): Promise<Frame> {
    const f = this.queue.shift();
    if (f) return Promise.resolve(f);
    if (this.closed) return Promise.reject(this.closeError);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Rejects every pending recv() (the operation using them failed). */
  failWaiters(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** Queues a frame; the payload buffer must stay untouched until flushed() resolves. */
  send(type: number, fields: FrameFields, payload?: Buffer): void {
    if (this.closed) throw this.closeError ?? new DistributedError(`link to ${this.name} is closed`, this.name);
    const header = encodeHeader(type, fields, payload?.length ?? 0);
    this.pendingWrites++;
    const done = (err?: Error | null) => {
      this.pendingWrites--;
      if (err) {
        this.destroy(this.failure(err as NodeJS.ErrnoException));
        return;
      }
      if (this.pendingWrites === 0) for (const w of this.drainWaiters.splice(0)) w.resolve();
    };
    if (payload && payload.length) {
      this.socket.cork();
      this.socket.write(header);
      this.socket.write(payload, done);
      this.socket.uncork();
    } else this.socket.write(header, done);
  }

  private trySend(type: number, fields: FrameFields, payload?: Buffer): void {
    try {
      this.send(type, fields, payload);
    } catch {
      /* closed: the close handler reports it */
    }
  }

  /** Resolves once every queued frame has been handed to the kernel. */
  flushed(): Promise<void> {
    if (this.closed) return this.pendingWrites ? Promise.reject(this.closeError) : Promise.resolve();
    if (this.pendingWrites === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /**
   * Says goodbye and closes after everything queued is sent; pending receivers fail with
   * `reason`. Resolves when the peer has closed its side too (at most 2 s).
   */
  close(reason: string): Promise<void> {
    if (!this.closed) {
      this.trySend(FrameType.BYE, {});
      this.socket.end();
      this.finish(new DistributedError(reason));
    }
    if (this.socket.destroyed) return Promise.resolve();
    return Promise.race([
      this.socketClosed,
      new Promise<void>((r) =>
        setTimeout(() => {
          this.socket.destroy();
          r();
        }, 2000).unref(),
      ),
    ]);
  }

  /** Drops the connection at once. */
  destroy(err: DistributedError): void {
    if (this.closed) return;
    this.socket.destroy();
    this.finish(err);
  }

  private finish(err: DistributedError): void {
    this.closed = true;
    this.closeError = err;
    clearInterval(this.pingTimer);
    for (const w of this.waiters.splice(0)) w.reject(err);
    for (const w of this.drainWaiters.splice(0)) w.reject(err);
    this.opts.onClose?.(err, this);
  }
}
