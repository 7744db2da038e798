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
  /**
   * Where payload bytes [at, at + n) belong, for sinks that only store them: a socket that can
   * choose its read buffer (FrameReader.nextRead) reads them there, and `write` is not called for
   * them. Sinks that compute from the bytes (sums) have none.
   */
  place?(at: number, n: number): Uint8Array;
  /**
   * For sinks that compute from the bytes: where a socket that can choose its read buffer should
   * read at most `n` of them (the sum's staging memory, float-kernels.ts), passed to `write` as
   * they land. Undefined: the reader's own scratch buffer.
   */
  stage?(n: number): Buffer | undefined;
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

/** What the buffer handed out by FrameReader.nextRead is. */
const enum ReadInto {
  HEADER,
  /** The payload's home: the frame's own buffer or a placing sink's destination. */
  PLACE,
  SCRATCH,
}

/**
 * Incremental parser: push socket chunks, get whole frames. Payloads are copied into their own
 * buffers, unless the router hands them to a sink (collectives: reduce / copy in place).
 *
 * A socket that can choose where each read lands (auth.ts, dialed connections) drives it with
 * nextRead()/took() instead of push(): headers are read into the header buffer, payloads
 * straight into their home (their own buffer, or a placing sink's destination), and bytes a
 * sink computes from into its staging memory (or a scratch buffer). No read runs past the current frame, so no
 * payload with a home is copied.
 */
export class FrameReader {
  private readonly hdr = Buffer.alloc(HEADER_BYTES);
  private hdrFill = 0;
  private cur: Frame | null = null;
  private fill = 0;
  private sink?: PayloadSink;
  private sinkLen = 0;
  private readInto = ReadInto.HEADER;
  /** Where bytes for a computing sink are read (nextRead) when it offers no staging; allocated on first need. */
  private scratch = EMPTY;
  /** What nextRead handed out last for a computing sink (scratch or the sink's staging). */
  private computeFrom = EMPTY;
  route?: PayloadRouter;

  constructor(
    public onFrame: (f: Frame) => void,
    public maxPayload = PREAUTH_MAX_PAYLOAD,
  ) {}

  /** The frame whose payload is arriving now, with its payload length (undefined between frames). */
  inProgress(): { frame: Frame; len: number } | undefined {
    return this.cur ? { frame: this.cur, len: this.sink ? this.sinkLen : this.cur.payload.length } : undefined;
  }

  /**
   * Where the next socket read should land, at most `maxBytes` bytes; pair every call with
   * took(n). The rest of a header goes to the header buffer, a payload with a home straight there,
   * bytes for a computing sink to the reader's scratch buffer (cut at the end of the frame).
   */
  nextRead(maxBytes: number): Uint8Array {
    if (!this.cur) {
      this.readInto = ReadInto.HEADER;
      return this.hdr.subarray(this.hdrFill);
    }
    if (this.sink) {
      const n = Math.min(this.sinkLen - this.fill, maxBytes);
      const home = this.sink.place?.(this.fill, n);
      if (home) {
        this.readInto = ReadInto.PLACE;
        return home;
      }
      this.readInto = ReadInto.SCRATCH;
      const staged = this.sink.stage?.(n);
      if (staged) return (this.computeFrom = staged);
      if (this.scratch.length < n) this.scratch = Buffer.allocUnsafe(maxBytes);
      return (this.computeFrom = this.scratch.subarray(0, n));
    }
    const p = this.cur.payload;
    this.readInto = ReadInto.PLACE;
    return p.subarray(this.fill, this.fill + Math.min(p.length - this.fill, maxBytes));
  }

  /** `n` bytes were read into what nextRead() returned last. */
  took(n: number): void {
    if (this.readInto === ReadInto.SCRATCH) {
      this.push(this.computeFrom.subarray(0, n));
      return;
    }
    if (this.readInto === ReadInto.HEADER) {
      this.hdrFill += n;
      if (this.hdrFill === HEADER_BYTES) {
        this.hdrFill = 0;
        this.beginFrame();
      }
      return;
    }
    this.fill += n;
    this.endPayloadIfDone();
  }

  /** The header buffer is full: starts its frame (or delivers it, without payload). */
  private beginFrame(): void {
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
      return;
    }
    this.cur = frame;
    this.fill = 0;
    this.sink = sink;
    this.sinkLen = sink ? len : 0;
  }

  private endPayloadIfDone(): void {
    const f = this.cur!;
    if (this.sink) {
      if (this.fill < this.sinkLen) return;
      f.sunk = this.sinkLen;
      this.sink = undefined;
    } else if (this.fill < f.payload.length) return;
    this.cur = null;
    this.onFrame(f);
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
        this.beginFrame();
      } else if (this.sink) {
        const n = Math.min(this.sinkLen - this.fill, chunk.length - pos);
        this.sink.write(chunk.subarray(pos, pos + n), this.fill);
        this.fill += n;
        pos += n;
        this.endPayloadIfDone();
      } else {
        const p = this.cur.payload;
        const n = Math.min(p.length - this.fill, chunk.length - pos);
        chunk.copy(p, this.fill, pos, pos + n);
        this.fill += n;
        pos += n;
        this.endPayloadIfDone();
      }
    }
  }
}
