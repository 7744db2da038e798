/**
 * Connection handshake on the node's shared listener: the dialer's first frame (HELLO) names the
 * channel and both ends; the acceptor answers with a challenge and proves it knows the cluster
 * secret; the dialer proves it too. Only HMAC-SHA256 values cross the wire, never the secret.
 *
 *   dialer → HELLO     magic "TFOSDIST", version, channel, from job/index, to job/index, nonce_c
 *   acceptor → CHALLENGE nonce_s, HMAC(secret, "tfos-dist/1 server\0" | hello | nonce_s)
 *   dialer → AUTH      HMAC(secret, "tfos-dist/1 client\0" | hello | nonce_s)
 *   acceptor → OK      (or ERROR <utf-8 reason>, then close)
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { authenticated, preauthTimeoutMs } from '../../platform/preauth';
import type { JobName } from '../../protocol/control';
import { AuthError, DistributedError, jobOfCode, JOB_CODES, peerName, PeerId, RetryableError, splitAddr } from './peers';
import { ChannelCode, encodeHeader, Frame, FrameReader, FrameType, MAX_PAYLOAD, PROTOCOL_MAGIC, WIRE_VERSION } from './wire';

const HELLO_BYTES = 8 + 4 + 8 + 32;
const SERVER_LABEL = Buffer.from('tfos-dist/1 server\0');
const CLIENT_LABEL = Buffer.from('tfos-dist/1 client\0');

export interface Hello {
  channel: number;
  from: { job: JobName; index: number };
  to: { job: JobName; index: number };
  raw: Buffer;
}

/** A socket that passed the handshake, its parser, and frames that arrived right after OK. */
export interface Established {
  socket: net.Socket;
  reader: FrameReader;
  backlog: Frame[];
  /**
   * From now on the socket's bytes go to `reader` as they arrive; `arrived` runs on each arrival,
   * `failed` when the reader refuses what came (a malformed or oversized frame).
   */
  listen(arrived: () => void, failed: (err: Error) => void): void;
}

/**
 * Largest read of a dialed connection. Node's default reading allocates a fresh 64 KiB buffer
 * per read and pushes it through the stream machinery; choosing each read's buffer (onread)
 * cut the CPU per received byte to about a third on a loopback ring and tripled its throughput.
 * Reads go where the frame reader says (FrameReader.nextRead): payloads straight into place,
 * and at most this many bytes at a time through a scratch buffer. Only sockets this process
 * creates can read that way, so collectives receive on the connections they dial.
 */
const DIALED_READ_BYTES = 256 << 10;

/** The dialer's first frame's payload (exported for the security tests that play a stranger). */
export function encodeHello(channel: ChannelCode, from: { job: JobName; index: number }, to: { job: JobName; index: number }): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.write(PROTOCOL_MAGIC, 0, 'latin1');
  b.writeUInt8(WIRE_VERSION, 8);
  b.writeUInt8(channel, 9);
  b.writeUInt8(JOB_CODES[from.job], 10);
  b.writeUInt8(JOB_CODES[to.job], 11);
  b.writeUInt32LE(from.index, 12);
  b.writeUInt32LE(to.index, 16);
  crypto.randomBytes(32).copy(b, 20);
  return b;
}

function decodeHello(b: Buffer): Hello | string {
  if (b.length !== HELLO_BYTES || b.toString('latin1', 0, 8) !== PROTOCOL_MAGIC) return 'not a tfjs-on-spark peer';
  if (b.readUInt8(8) !== WIRE_VERSION) return `wire version ${b.readUInt8(8)} is not supported (this node speaks ${WIRE_VERSION})`;
  const fromJob = jobOfCode(b.readUInt8(10));
  const toJob = jobOfCode(b.readUInt8(11));
  if (!fromJob || !toJob) return 'unknown job code';
  return {
    channel: b.readUInt8(9),
    from: { job: fromJob, index: b.readUInt32LE(12) },
    to: { job: toJob, index: b.readUInt32LE(16) },
    raw: b,
  };
}

function proof(secret: string, label: Buffer, hello: Buffer, nonce: Buffer): Buffer {
  return crypto.createHmac('sha256', secret).update(label).update(hello).update(nonce).digest();
}

function sendFrame(sock: net.Socket, type: number, payload?: Buffer): void {
  sock.write(encodeHeader(type, {}, payload?.length ?? 0));
  if (payload?.length) sock.write(payload);
}

export interface DialOptions {
  secret: string;
  channel: ChannelCode;
  self: { job: JobName; index: number };
  target: PeerId;
  /** Longest wait for each answer of the peer before this try is given up (retryable). */
  stepTimeoutMs: number;
}

/**
 * One connection attempt. Rejects with RetryableError when the peer is not (yet) there or not
 * serving, AuthError on a secret mismatch, DistributedError when the peer refuses us.
 * `adopt` runs synchronously once the handshake is through, so no socket event is missed.
 */
export function dialOnce<T>(o: DialOptions, adopt: (est: Established) => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const name = peerName(o.target);
    const { host, port } = splitAddr(o.target.addr);
    let state: 'connecting' | 'challenge' | 'ok' | 'done' = 'connecting';
    const backlog: Frame[] = [];
    const hello = encodeHello(o.channel, o.self, o.target);
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () => fail(new RetryableError(`${name} did not answer the handshake within ${o.stepTimeoutMs} ms`)),
        o.stepTimeoutMs,
      );
    };
    const fail = (err: Error) => {
      if (state === 'done') return;
      state = 'done';
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    const reader = new FrameReader((f) => {
      if (state === 'done') {
        backlog.push(f);
        return;
      }
      if (f.type === FrameType.ERROR) {
        const msg = f.payload.toString('utf8');
        fail(
          /authentication/.test(msg)
            ? new AuthError(`${name} rejected this node: ${msg}`, name)
            : new DistributedError(`${name} refused the connection: ${msg}`, name),
        );
        return;
      }
      if (state === 'challenge' && f.type === FrameType.CHALLENGE && f.payload.length === 64) {
        const nonce = f.payload.subarray(0, 32);
        const expected = proof(o.secret, SERVER_LABEL, hello, nonce);
        if (!crypto.timingSafeEqual(expected, f.payload.subarray(32, 64))) {
          // Tell the acceptor why we leave so it can fail fast too, then go.
          state = 'done';
          clearTimeout(timer);
          const msg = Buffer.from('authentication failed: the acceptor could not prove the cluster secret');
          sock.end(Buffer.concat([encodeHeader(FrameType.ERROR, {}, msg.length), msg]));
          setTimeout(() => sock.destroy(), 1000).unref();
          reject(
            new AuthError(
              `authentication with ${name} failed: it does not hold this cluster's secret (wrong secret, or another cluster on that port)`,
              name,
            ),
          );
          return;
        }
        sendFrame(sock, FrameType.AUTH, proof(o.secret, CLIENT_LABEL, hello, nonce));
        state = 'ok';
        arm();
        return;
      }
      if (state === 'ok' && f.type === FrameType.OK) {
        state = 'done';
        clearTimeout(timer);
        reader.maxPayload = MAX_PAYLOAD;
        failed = () => undefined;
        sock.removeAllListeners('error');
        sock.removeAllListeners('close');
        sock.removeAllListeners('connect');
        try {
          const listen = (onArrival: () => void, onFailure: (err: Error) => void) => {
            arrived = onArrival;
            failed = onFailure;
          };
          resolve(adopt({ socket: sock, reader, backlog, listen }));
        } catch (err) {
          sock.destroy();
          reject(err as Error);
        }
        return;
      }
      fail(new DistributedError(`${name} broke the handshake (frame type ${f.type} in state ${state})`, name));
    });
    let arrived: () => void = () => undefined;
    let failed = (err: Error) => fail(err);
    const sock = net.connect({
      host,
      port,
      onread: {
        buffer: () => reader.nextRead(DIALED_READ_BYTES),
        callback: (n: number) => {
          arrived();
          try {
            reader.took(n);
          } catch (err) {
            failed(err as Error);
          }
          return true;
        },
      },
    });
    sock.setNoDelay(true);
    sock.on('connect', () => {
      state = 'challenge';
      sendFrame(sock, FrameType.HELLO, hello);
      arm();
    });
    arm();
    sock.on('error', (e: NodeJS.ErrnoException) => fail(new RetryableError(`${name}: ${e.code ?? e.message}`)));
    sock.on('close', () => fail(new RetryableError(`${name} closed the connection during the handshake`)));
  });
}

export interface AcceptOptions {
  secret: string;
  self: PeerId;
  stepTimeoutMs: number;
  /** A reason to refuse this peer (unknown identity, wrong channel for this node), or undefined. */
  validate(hello: Hello): string | undefined;
  /** Someone claiming to be hello.from failed authentication. */
  onAuthFailure(hello: Hello, reason: string): void;
  /** The handshake is through; runs synchronously. */
  adopt(hello: Hello, est: Established): void;
}

/** Runs the acceptor side on a fresh socket from the shared listener. Never throws. */
export function acceptConnection(sock: net.Socket, o: AcceptOptions): void {
  sock.setNoDelay(true);
  let state: 'hello' | 'auth' | 'done' = 'hello';
  let hello: Hello | undefined;
  let nonce: Buffer | undefined;
  const backlog: Frame[] = [];
  // The whole handshake, not each step, must finish within the pre-authentication bound.
  const timer = setTimeout(() => close(), Math.min(o.stepTimeoutMs * 2, preauthTimeoutMs()));
  const close = (reason?: string) => {
    if (state === 'done') return;
    state = 'done';
    clearTimeout(timer);
    if (reason) {
      const p = Buffer.from(reason, 'utf8');
      sock.end(Buffer.concat([encodeHeader(FrameType.ERROR, {}, p.length), p]));
      setTimeout(() => sock.destroy(), 1000).unref();
    } else sock.destroy();
  };
  const reader = new FrameReader((f) => {
    if (state === 'done') {
      backlog.push(f);
      return;
    }
    if (state === 'hello') {
      if (f.type !== FrameType.HELLO) return close();
      const h = decodeHello(f.payload);
      if (typeof h === 'string') return close(h);
      hello = h;
      const refusal = o.validate(h);
      if (refusal) return close(refusal);
      nonce = crypto.randomBytes(32);
      sendFrame(sock, FrameType.CHALLENGE, Buffer.concat([nonce, proof(o.secret, SERVER_LABEL, h.raw, nonce)]));
      state = 'auth';
      return;
    }
    // state === 'auth'
    if (f.type === FrameType.ERROR) {
      o.onAuthFailure(hello!, `it did not accept this node's proof of the cluster secret (${f.payload.toString('utf8')})`);
      return close();
    }
    if (f.type !== FrameType.AUTH || f.payload.length !== 32) return close('authentication failed: malformed proof');
    const expected = proof(o.secret, CLIENT_LABEL, hello!.raw, nonce!);
    if (!crypto.timingSafeEqual(expected, f.payload)) {
      o.onAuthFailure(hello!, 'wrong cluster secret');
      return close('authentication failed: wrong cluster secret');
    }
    state = 'done';
    clearTimeout(timer);
    authenticated(sock);
    sendFrame(sock, FrameType.OK);
    reader.maxPayload = MAX_PAYLOAD;
    sock.removeAllListeners('data');
    sock.removeAllListeners('error');
    sock.removeAllListeners('close');
    const listen = (arrived: () => void, failed: (err: Error) => void) =>
      sock.on('data', (chunk: Buffer) => {
        arrived();
        try {
          reader.push(chunk);
        } catch (err) {
          failed(err as Error);
        }
      });
    o.adopt(hello!, { socket: sock, reader, backlog, listen });
  });
  sock.on('data', (chunk: Buffer) => {
    try {
      reader.push(chunk);
    } catch {
      close();
    }
  });
  sock.on('error', () => close());
  sock.on('close', () => close());
}
