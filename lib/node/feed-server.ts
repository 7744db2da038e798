/**
 * The trainer's data port for InputMode.SPARK: Spark's feeding tasks connect here and stream
 * Arrow IPC record batches (one connection per feed, epoch and worker); for inference the trainer
 * writes its results back on the same connection.
 *
 * Wire format (docs/data.md). Both ends prove the cluster secret over both nonces and the header,
 * so neither a stranger nor a replayed or altered header gets data in or out:
 *   server → nonce_s (16 bytes)
 *   client → nonce_c (16) | u32 BE header length | header JSON {feedId, kind: 'train'|'infer', epoch, worker}
 *            | HMAC-SHA256(secret, "tfos-feed/2 client\0" | nonce_s | nonce_c | header) (32)
 *   server → HMAC-SHA256(secret, "tfos-feed/2 server\0" | nonce_s | nonce_c | header) (32), or closes
 *   client → one Arrow IPC stream (none at all for an empty share), then half-close
 *   train:  server → 'D' + u64 rows taken (all consumed) or 'T' + u64 (terminated early)
 *   infer:  server → frames of u32 length + Arrow IPC stream of result rows; length 0 ends
 * Backpressure is TCP's: the trainer reads only as fast as the training loop pulls batches.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import type { RecordBatch, Table } from 'apache-arrow';
import { authenticated, guardListener } from '../platform/preauth';

/** apache-arrow, loaded on a feed's first connection: a third of a trainer's start-up before it registers. */
const arrow = (): typeof import('apache-arrow') => require('apache-arrow') as typeof import('apache-arrow');

const CLIENT_LABEL = Buffer.from('tfos-feed/2 client\0');
const SERVER_LABEL = Buffer.from('tfos-feed/2 server\0');
/** Longest header accepted before the proof is checked. */
const MAX_HEADER_BYTES = 4096;

/** The proof one side of a feed connection gives (see the wire format above). */
export function feedProof(secret: string, side: 'client' | 'server', nonceS: Buffer, nonceC: Buffer, header: Buffer): Buffer {
  return crypto
    .createHmac('sha256', secret)
    .update(side === 'client' ? CLIENT_LABEL : SERVER_LABEL)
    .update(nonceS)
    .update(nonceC)
    .update(header)
    .digest();
}

export interface FeedHeader {
  feedId: string;
  kind: 'train' | 'infer';
  epoch: number;
  worker: number;
}

/** One feeding task's stream into this trainer. */
export class FeedConnection {
  private done = false;

  constructor(
    readonly header: FeedHeader,
    private readonly socket: net.Socket,
    private readonly body: AsyncIterable<Uint8Array>,
  ) {}

  /** The record batches of this connection, pulled from the socket as they are consumed. */
  async *batches(): AsyncGenerator<RecordBatch> {
    const it = this.body[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done) return; // an empty share: the feeder sent no Arrow stream at all
    async function* all(): AsyncGenerator<Uint8Array> {
      yield first.value;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    }
    const reader = await arrow().RecordBatchReader.from(all());
    await reader.open();
    for await (const batch of reader) yield batch;
  }

  /** Training: tells the feeder how it ended ('D' all taken, 'T' terminated) and closes. */
  ack(rows: number, terminated: boolean): void {
    if (this.done) return;
    this.done = true;
    const msg = Buffer.alloc(9);
    msg.write(terminated ? 'T' : 'D', 0, 'latin1');
    msg.writeBigUInt64BE(BigInt(rows), 1);
    this.socket.end(msg);
    if (terminated) {
      // Read and drop the rest, so the feeding task is not left blocked writing into a full socket.
      void (async () => {
        try {
          for (;;) if ((await this.body[Symbol.asyncIterator]().next()).done) break;
        } catch {
          /* the feeder went away: nothing left to drain */
        }
      })();
    }
  }

  /** Inference: one frame of result rows (in input order). Resolves when the socket accepted it. */
  sendResults(table: Table): Promise<void> {
    const ipc = arrow().tableToIPC(table, 'stream');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(ipc.byteLength);
    return new Promise((resolve, reject) => {
      this.socket.write(len);
      this.socket.write(ipc, (err) => (err ? reject(err) : resolve()));
    });
  }

  endResults(): void {
    if (this.done) return;
    this.done = true;
    this.socket.end(Buffer.alloc(4));
  }

  destroy(): void {
    this.done = true;
    this.socket.destroy();
  }
}

/** Reads exactly n bytes from an async chunk iterator, keeping what is left over. */
class ChunkReader {
  private buf = Buffer.alloc(0);
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  async exact(n: number, what: string): Promise<Buffer> {
    while (this.buf.length < n) {
      const r = await this.it.next();
      if (r.done) throw new Error(`feeder closed the connection while sending the ${what}`);
      this.buf = Buffer.concat([this.buf, r.value]);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Everything after what was read, as one async iterable. */
  async *rest(): AsyncGenerator<Uint8Array> {
    if (this.buf.length) yield this.buf;
    this.buf = Buffer.alloc(0);
    for (;;) {
      const r = await this.it.next();
      if (r.done) return;
      yield r.value;
    }
  }
}

export class FeedServer {
  private readonly server: net.Server;
  /** Connections that arrived before anyone asked for them, by feedId/epoch. */
  private readonly arrived = new Map<string, FeedConnection>();
  private readonly waiting = new Map<string, { resolve: (c: FeedConnection) => void; reject: (e: Error) => void }>();
  private readonly failures = new Map<string, string>();
  port = 0;

  constructor(
    private readonly secret: string,
    private readonly onError: (err: Error) => void = () => undefined,
  ) {
    // Half-open: the feeder half-closes after its data, and still waits for our answer.
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.accept(socket).catch((err: Error) => {
        socket.destroy();
        this.onError(err);
      });
    });
    guardListener(this.server, { onReject: (why, remote) => this.onError(new Error(`feed connection from ${remote} closed: ${why}`)) });
  }

  listen(host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port: 0 }, () => {
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  /** The connection of feed `feedId`, epoch `epoch`, whenever its feeder connects. */
  next(feedId: string, epoch: number): Promise<FeedConnection> {
    const failed = this.failures.get(feedId);
    if (failed) return Promise.reject(new Error(failed));
    const key = `${feedId}/${epoch}`;
    const ready = this.arrived.get(key);
    if (ready) {
      this.arrived.delete(key);
      return Promise.resolve(ready);
    }
    return new Promise((resolve, reject) => this.waiting.set(key, { resolve, reject }));
  }

  /** The feed failed on the Spark side: whoever waits for its data gets the error instead. */
  fail(feedId: string, error: string): void {
    this.failures.set(feedId, `data feed failed in Spark: ${error}`);
    for (const [key, w] of this.waiting) {
      if (key.startsWith(`${feedId}/`)) {
        this.waiting.delete(key);
        w.reject(new Error(`data feed failed in Spark: ${error}`));
      }
    }
  }

  close(): void {
    for (const c of this.arrived.values()) c.destroy();
    this.arrived.clear();
    this.server.close();
  }

  private async accept(socket: net.Socket): Promise<void> {
    socket.setNoDelay(true);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const nonceS = crypto.randomBytes(16);
    socket.write(nonceS);
    // destroyOnReturn: false — reaching the end of the feeder's data must not close our side,
    // which still has to send the acknowledgement or the inference results.
    const reader = new ChunkReader(socket.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>);
    const nonceC = await reader.exact(16, 'nonce');
    const len = (await reader.exact(4, 'header length')).readUInt32BE(0);
    if (len > MAX_HEADER_BYTES)
      throw new Error(`feed connection from ${remote} refused: header of ${len} bytes (at most ${MAX_HEADER_BYTES} before authentication)`);
    const raw = await reader.exact(len, 'header');
    const proof = await reader.exact(32, 'authentication');
    if (!crypto.timingSafeEqual(proof, feedProof(this.secret, 'client', nonceS, nonceC, raw))) {
      throw new Error(`feed connection from ${remote} failed authentication (wrong cluster secret, or an altered header)`);
    }
    authenticated(socket);
    socket.write(feedProof(this.secret, 'server', nonceS, nonceC, raw));
    const header = parseHeader(raw, remote);
    const conn = new FeedConnection(header, socket, reader.rest());
    const key = `${header.feedId}/${header.epoch}`;
    const waiter = this.waiting.get(key);
    if (waiter) {
      this.waiting.delete(key);
      waiter.resolve(conn);
    } else {
      this.arrived.set(key, conn);
    }
  }
}

function parseHeader(raw: Buffer, remote: string): FeedHeader {
  let h: Partial<FeedHeader>;
  try {
    h = JSON.parse(raw.toString('utf8')) as Partial<FeedHeader>;
  } catch {
    throw new Error(`feed connection from ${remote}: header is not JSON`);
  }
  if (
    typeof h.feedId !== 'string' ||
    (h.kind !== 'train' && h.kind !== 'infer') ||
    !Number.isInteger(h.epoch) ||
    !Number.isInteger(h.worker)
  ) {
    throw new Error(`feed connection from ${remote}: header ${raw.toString('utf8').slice(0, 200)} lacks feedId, kind, epoch or worker`);
  }
  return h as FeedHeader;
}
