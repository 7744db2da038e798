/**
 * Receiving collective payloads in place: the frame reader hands a routed frame's payload to its
 * sink piece by piece, in order, however the socket splits it, and buffers every other frame as
 * before; driven by a socket that lets it choose each read's buffer, it has stored payloads read
 * straight into place; the sinks add or copy those pieces into the right floats whatever their
 * byte boundaries and memory alignment.
 */
import { expect } from 'chai';
import { CopySink, ReduceSink } from '../../lib/node/distributed/collectives';
import { reduceBuffer } from '../../lib/node/distributed/float-kernels';
import { encodeHeader, Frame, FrameReader, FrameType } from '../../lib/node/distributed/wire';

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** `bytes` cut into pieces of 1–9 bytes, each in its own buffer at an odd memory offset. */
function pieces(bytes: Buffer, seed: number): Buffer[] {
  const r = lcg(seed);
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, 1 + Math.floor(r() * 9));
    const b = Buffer.alloc(n + 1).subarray(1);
    bytes.copy(b, 0, at, at + n);
    out.push(b);
    at += n;
  }
  return out;
}

const floats = (n: number, seed: number) => {
  const r = lcg(seed);
  return Float32Array.from({ length: n }, () => Math.round(r() * 2000 - 1000));
};

describe('receiving collective payloads in place', () => {
  it('the frame reader streams routed payloads to the sink and buffers the others', () => {
    const payloadA = Buffer.from(floats(50, 1).buffer);
    const payloadB = Buffer.from(floats(30, 2).buffer);
    const stream = Buffer.concat([
      encodeHeader(FrameType.DATA, { seq: 5, total: 80, offset: 0 }, payloadA.length),
      payloadA,
      encodeHeader(FrameType.DATA, { seq: 6, total: 80, offset: 0 }, payloadB.length),
      payloadB,
      encodeHeader(FrameType.BARRIER, { seq: 7 }, 0),
    ]);
    const frames: Frame[] = [];
    const received = Buffer.alloc(payloadA.length);
    let next = 0;
    const reader = new FrameReader((f) => frames.push(f), 1 << 20);
    reader.route = (h) =>
      h.seq === 5
        ? {
            write: (bytes, at) => {
              expect(at, 'pieces arrive in order').to.equal(next);
              bytes.copy(received, at);
              next += bytes.length;
            },
          }
        : undefined;
    for (const p of pieces(stream, 3)) reader.push(p);
    expect(frames.map((f) => [f.seq, f.sunk, f.payload.length])).to.deep.equal([
      [5, payloadA.length, 0],
      [6, undefined, payloadB.length],
      [7, undefined, 0],
    ]);
    expect(received.equals(payloadA)).to.equal(true);
    expect(frames[1].payload.equals(payloadB)).to.equal(true);
  });

  it('driven by nextRead/took, the reader has headers and stored payloads read in place, and no read runs past a frame', () => {
    const payloadA = Buffer.from(floats(50, 11).buffer); // to a placing sink
    const payloadB = Buffer.from(floats(30, 12).buffer); // to a computing sink
    const payloadC = Buffer.from(floats(20, 13).buffer); // buffered
    const stream = Buffer.concat([
      encodeHeader(FrameType.DATA, { seq: 5 }, payloadA.length),
      payloadA,
      encodeHeader(FrameType.DATA, { seq: 6 }, payloadB.length),
      payloadB,
      encodeHeader(FrameType.PING, { seq: 7 }, 0),
      encodeHeader(FrameType.DATA, { seq: 8 }, payloadC.length),
      payloadC,
    ]);
    const frames: Frame[] = [];
    const placed = Buffer.alloc(payloadA.length);
    const computed = Buffer.alloc(payloadB.length);
    const writesToPlacing: number[] = [];
    const reader = new FrameReader((f) => frames.push(f), 1 << 20);
    reader.route = (h) =>
      h.seq === 5
        ? { write: (b) => writesToPlacing.push(b.length), place: (at, n) => placed.subarray(at, at + n) }
        : h.seq === 6
          ? { write: (b, at) => b.copy(computed, at) }
          : undefined;
    // A socket: each read fills 1..all of the buffer it is given (the kernel may return less).
    const r = lcg(14);
    const frameEnds = [24 + 200, 24 + 200 + 24 + 120, 24 + 200 + 24 + 120 + 24, stream.length];
    let at = 0;
    while (at < stream.length) {
      const into = reader.nextRead(64);
      expect(into.length, 'a read never asks for nothing').to.be.greaterThan(0);
      const n = Math.min(into.length, stream.length - at, 1 + Math.floor(r() * into.length));
      stream.copy(Buffer.from(into.buffer, into.byteOffset, into.length), 0, at, at + n);
      at += n;
      reader.took(n);
      const crossed = frameEnds.find((e) => at - n < e && at > e);
      expect(crossed, `read of ${n} bytes ending at ${at} ran past a frame`).to.equal(undefined);
    }
    expect(frames.map((f) => [f.seq, f.sunk, f.payload.length])).to.deep.equal([
      [5, payloadA.length, 0],
      [6, payloadB.length, 0],
      [7, undefined, 0],
      [8, undefined, payloadC.length],
    ]);
    expect(placed.equals(payloadA), 'placed payload').to.equal(true);
    expect(writesToPlacing, 'a placing sink is not written to').to.deep.equal([]);
    expect(computed.equals(payloadB), 'computed payload').to.equal(true);
    expect(frames[3].payload.equals(payloadC), 'buffered payload').to.equal(true);
  });

  it('ReduceSink adds payload floats split at any byte and alignment; CopySink copies them', () => {
    const base = floats(1000, 4);
    const incoming = floats(700, 5);
    const bytes = Buffer.from(incoming.buffer);
    const sum = base.slice();
    const sink = new ReduceSink(sum, 123);
    let at = 0;
    for (const p of pieces(bytes, 6)) {
      sink.write(p, at);
      at += p.length;
    }
    const copy = base.slice();
    const copier = new CopySink(copy, 200, incoming.length);
    at = 0;
    for (const p of pieces(bytes, 7)) {
      copier.write(p, at);
      at += p.length;
    }
    for (let i = 0; i < base.length; i++) {
      const inRange = (from: number) => i >= from && i < from + incoming.length;
      expect(sum[i], `sum[${i}]`).to.equal(inRange(123) ? base[i] + incoming[i - 123] : base[i]);
      expect(copy[i], `copy[${i}]`).to.equal(inRange(200) ? incoming[i - 200] : base[i]);
    }
  });

  it("driven by nextRead/took, a ReduceSink has its bytes read into the sum's staging memory, floats split at any byte", () => {
    const incoming = floats(5000, 21);
    const payload = Buffer.from(incoming.buffer);
    const stream = Buffer.concat([encodeHeader(FrameType.DATA, { seq: 9 }, payload.length), payload]);
    for (const dst of [floats(6000, 22), reduceBuffer(6000)]) {
      const start = dst.slice();
      const reader = new FrameReader(() => undefined, 1 << 20);
      reader.route = () => new ReduceSink(dst, 500);
      const r = lcg(23);
      for (let at = 0; at < stream.length;) {
        const into = reader.nextRead(4096);
        const n = Math.min(into.length, stream.length - at, 1 + Math.floor(r() * into.length));
        stream.copy(Buffer.from(into.buffer, into.byteOffset, into.length), 0, at, at + n);
        at += n;
        reader.took(n);
      }
      for (let i = 0; i < dst.length; i++) {
        const want = i >= 500 && i < 5500 ? Math.fround(start[i] + incoming[i - 500]) : start[i];
        expect(dst[i], `dst[${i}]`).to.equal(want);
      }
    }
  });
});
