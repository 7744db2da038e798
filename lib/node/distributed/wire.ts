/**
 * Binary framing of the distributed channels (docs/distributed.md, "Wire protocol").
 *
 * Every frame is a 24-byte little-endian header followed by `len` payload bytes:
 *
 *   off size field
 *     0  u8  type     frame type (FrameType)
 *     1  u8  flags    reserved, 0
 *     2  u16 tag      reserved, 0
 *     4  u32 seq      collective sequence number / ps request id / ping position
 *     8  u32 total    collectives: element count of the whole buffer; ps: version
 *    12  u32 offset   collectives: element offset of the payload in the buffer
 *    16  u32 aux      collectives: op code or root; ps: model id
 *    20  u32 len      payload length in bytes
 *
 * Tensor payloads are raw float32 in little-endian order, never JSON.
 */
import * as os from 'node:os';

export const HEADER_BYTES = 24;
export const PROTOCOL_MAGIC = 'TFOSDIST';
export const WIRE_VERSION = 2;

/** Largest payload accepted before a connection has authenticated. */
export const PREAUTH_MAX_PAYLOAD = 1024;
/** Largest payload accepted afterwards (one chunk; buffers are sent in chunks). */
export const MAX_PAYLOAD = 1 << 30;

export const FrameType = {
  // handshake
  HELLO: 1,
  CHALLENGE: 2,
  AUTH: 3,
  OK: 4,
  ERROR: 5,
  // link upkeep
  PING: 6,
  BYE: 7,
  // collectives
  DATA: 16,
  BARRIER: 17,
  // parameter server
  PS_CONFIG: 32,
  PS_INIT: 33,
  PS_PUSH: 34,
  PS_PULL: 35,
  PS_WEIGHTS: 36,
  PS_ACK: 37,
  PS_ERROR: 38,
  PS_STATE: 39,
  PS_INIT_STATE: 40,
} as const;

export const Channel = { COLLECTIVE: 1, PS: 2 } as const;
export type ChannelCode = (typeof Channel)[keyof typeof Channel];

export interface FrameFields {
  seq?: number;
  total?: number;
  offset?: number;
  aux?: number;
}

export interface Frame {
  type: number;
  flags: number;
  tag: number;
  seq: number;
  total: number;
  offset: number;
  aux: number;
  /** The payload, unless a PayloadSink took it (then empty, and `sunk` holds its length). */
  payload: Buffer;
  /** Payload bytes handed to a PayloadSink as they arrived. */
  sunk?: number;
}

/** Header fields of a frame whose payload is about to arrive. */
export type FrameHeader = Omit<Frame, 'payload' | 'sunk'> & { len: number };

/**
 * Takes a frame's payload piece by piece straight from the socket's chunks (no payload buffer,
 * no copy on receipt): `at` is the byte position of `bytes` within the payload.
 */
export interface PayloadSink {
  write(bytes: Buffer, at: number): void;
}

/** Decides, per frame header, whether a sink takes the payload (undefined: buffer it as usual). */
export type PayloadRouter = (h: FrameHeader) => PayloadSink | undefined;

if (os.endianness() !== 'LE') {
  // Float32Array views use the host byte order; the wire is little-endian.
  throw new Error('tfjs-on-spark distributed: big-endian hosts are not supported');
}

export function encodeHeader(type: number, f: FrameFields, payloadBytes: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt8(type, 0);
  h.writeUInt8(0, 1);
  h.writeUInt16LE(0, 2);
  h.writeUInt32LE((f.seq ?? 0) >>> 0, 4);
  h.writeUInt32LE((f.total ?? 0) >>> 0, 8);
  h.writeUInt32LE((f.offset ?? 0) >>> 0, 12);
  h.writeUInt32LE((f.aux ?? 0) >>> 0, 16);
  h.writeUInt32LE(payloadBytes >>> 0, 20);
  return h;
}

/** Bytes of a Float32Array (no copy). */
export function floatBytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Float32 view of a payload (no copy when aligned, which payloads from FrameReader are). */
export function payloadFloats(p: Buffer): Float32Array {
  if (p.length % 4 !== 0) throw new Error(`payload of ${p.length} bytes is not a whole number of float32`);
  if (p.byteOffset % 4 === 0) return new Float32Array(p.buffer, p.byteOffset, p.length / 4);
  const copy = new Float32Array(p.length / 4);
  new Uint8Array(copy.buffer).set(p);
  return copy;
}

export class FrameTooLargeError extends Error {}

const EMPTY = Buffer.alloc(0);

/**
 * Incremental parser: push socket chunks, get whole frames. Payloads are copied into their own
 * buffers, unless the router hands them to a sink (collectives: reduce / copy in place).
 */
export class FrameReader {
  private readonly hdr = Buffer.alloc(HEADER_BYTES);
  private hdrFill = 0;
  private cur: Frame | null = null;
  private fill = 0;
  private sink?: PayloadSink;
  private sinkLen = 0;
  route?: PayloadRouter;

  constructor(
    public onFrame: (f: Frame) => void,
    public maxPayload = PREAUTH_MAX_PAYLOAD,
  ) {}

  /** The frame whose payload is arriving now, with its payload length (undefined between frames). */
  inProgress(): { frame: Frame; len: number } | undefined {
    return this.cur ? { frame: this.cur, len: this.sink ? this.sinkLen : this.cur.payload.length } : undefined;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.cur) {
        const n = Math.min(HEADER_BYTES - this.hdrFill, chunk.length - pos);
        chunk.copy(this.hdr, this.hdrFill, pos, pos + n);
        this.hdrFill += n;
        pos += n;
        if (this.hdrFill < HEADER_BYTES) return;
        this.hdrFill = 0;
        const len = this.hdr.readUInt32LE(20);
        if (len > this.maxPayload) throw new FrameTooLargeError(`frame of ${len} bytes exceeds the limit of ${this.maxPayload}`);
        const head: FrameHeader = {
          type: this.hdr.readUInt8(0),
          flags: this.hdr.readUInt8(1),
          tag: this.hdr.readUInt16LE(2),
          seq: this.hdr.readUInt32LE(4),
          total: this.hdr.readUInt32LE(8),
          offset: this.hdr.readUInt32LE(12),
          aux: this.hdr.readUInt32LE(16),
          len,
        };
        const sink = len ? this.route?.(head) : undefined;
        const { len: _len, ...fields } = head;
        // allocUnsafe: pooled slices are 8-byte aligned, larger ones own their ArrayBuffer.
        const frame: Frame = { ...fields, payload: len && !sink ? Buffer.allocUnsafe(len) : EMPTY };
        if (!len) {
          this.onFrame(frame);
          continue;
        }
        this.cur = frame;
        this.fill = 0;
        this.sink = sink;
        this.sinkLen = sink ? len : 0;
      } else if (this.sink) {
        const n = Math.min(this.sinkLen - this.fill, chunk.length - pos);
        this.sink.write(chunk.subarray(pos, pos + n), this.fill);
        this.fill += n;
        pos += n;
        if (this.fill === this.sinkLen) {
          const f = this.cur;
          f.sunk = this.sinkLen;
          this.cur = null;
          this.sink = undefined;
          this.onFrame(f);
        }
      } else {
        const p = this.cur.payload;
        const n = Math.min(p.length - this.fill, chunk.length - pos);
        chunk.copy(p, this.fill, pos, pos + n);
        this.fill += n;
        pos += n;
        if (this.fill === p.length) {
          const f = this.cur;
          this.cur = null;
          this.onFrame(f);
        }
      }
    }
  }
}
