/**
 * The reduction kernels (dst += src, dst /= n over float32) give exactly the plain loops' floats,
 * through the WebAssembly lanes and the staging around them: every length around the lane width and
 * the staging piece, any destination offset, source bytes at any memory alignment, into a plain
 * Float32Array or in place into a reduceBuffer, from anywhere or from the staging memory a socket
 * reads into.
 */
import { expect } from 'chai';
import {
  addBytesInto,
  addInto,
  divideRange,
  floatKernelImplementation,
  reduceBuffer,
  reduceBuffers,
  stagingFor,
} from '../../lib/node/distributed/float-kernels';

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const randomFloats = (n: number, seed: number) => {
  const r = lcg(seed);
  return Float32Array.from({ length: n }, () => (r() - 0.5) * 10 ** Math.floor(r() * 8 - 4));
};

function reference(dst: Float32Array, at: number, src: Float32Array): Float32Array {
  const out = dst.slice();
  for (let i = 0; i < src.length; i++) out[at + i] += src[i];
  return out;
}

const LENGTHS = [0, 1, 3, 4, 5, 63, 64, 65, 67, 1000, 16383, 16384, 16385, 16388, 40001, 65535, 65536, 65537, 70001];

/** A reduceBuffer holding `values`. */
function inReduceBuffer(values: Float32Array): Float32Array {
  const b = reduceBuffer(values.length);
  b.set(values);
  return b;
}

/** Where the floats summed into live: a plain Float32Array (staged sums) or a reduceBuffer (in place). */
const DESTINATIONS: Array<[string, (values: Float32Array) => Float32Array]> = [
  ['Float32Array', (values) => values.slice()],
  ['reduceBuffer', inReduceBuffer],
];

const same = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('the float32 reduction kernels', () => {
  it('runs on WebAssembly SIMD in this Node (unless TFOS_NO_WASM_SIMD=1)', () => {
    expect(floatKernelImplementation()).to.equal(process.env.TFOS_NO_WASM_SIMD === '1' ? 'js' : 'wasm-simd');
  });

  for (const [kind, into] of DESTINATIONS) {
    it(`addInto into a ${kind} matches the plain loop bit for bit at every length and offset, leaving other floats alone`, () => {
      for (const n of LENGTHS) {
        for (const at of [0, 1, 7]) {
          const start = randomFloats(n + at + 5, n * 31 + at);
          const src = randomFloats(n, n * 17 + at + 1);
          const dst = into(start);
          addInto(dst, at, src);
          expect(same(dst, reference(start, at, src)), `n=${n} at=${at}`).to.equal(true);
        }
      }
    });

    it(`addBytesInto into a ${kind} reads little-endian floats from bytes at any memory alignment`, () => {
      for (const n of LENGTHS) {
        for (const misalign of [0, 1, 2, 3]) {
          const start = randomFloats(n + 9, n + misalign);
          const src = randomFloats(n, n + misalign + 100);
          const bytes = Buffer.alloc(n * 4 + misalign).subarray(misalign);
          Buffer.from(src.buffer).copy(bytes);
          const dst = into(start);
          addBytesInto(dst, 9, bytes);
          expect(same(dst, reference(start, 9, src)), `n=${n} misalign=${misalign}`).to.equal(true);
        }
      }
    });

    it(`divideRange in a ${kind} divides exactly as the loop does (not by multiplying with 1/n), only inside the range`, () => {
      for (const n of LENGTHS) {
        for (const by of [2, 3, 7]) {
          const start = randomFloats(n + 10, n * 7 + by);
          const want = start.slice();
          for (let i = 4; i < 4 + n; i++) want[i] /= by;
          const buf = into(start);
          divideRange(buf, 4, 4 + n, by);
          expect(same(buf, want), `n=${n} by=${by}`).to.equal(true);
        }
      }
    });
  }

  it('keeps NaN, infinities and signed zeros as the loop does', () => {
    const dst = Float32Array.from([NaN, Infinity, -Infinity, -0, 0, 1, Infinity, 3.4e38, ...new Array<number>(64).fill(1)]);
    const src = Float32Array.from([1, 1, -1, -0, -0, NaN, -Infinity, 3.4e38, ...new Array<number>(64).fill(-1)]);
    const want = reference(dst, 0, src);
    addInto(dst, 0, src);
    expect(Buffer.from(dst.buffer).equals(Buffer.from(want.buffer))).to.equal(true);
  });

  it('a reduceBuffer is a zeroed Float32Array of the length asked, in WebAssembly memory when the kernel runs', () => {
    const b = reduceBuffer(1001);
    expect(b).to.be.instanceOf(Float32Array);
    expect(b.length).to.equal(1001);
    expect(b.every((v) => v === 0)).to.equal(true);
    expect(b.buffer.byteLength > b.byteLength).to.equal(floatKernelImplementation() === 'wasm-simd');
    expect(reduceBuffer(0).length).to.equal(0);
  });

  it('reduceBuffers share one memory, each zeroed and of its length, and a sum into one leaves the others alone', () => {
    const bufs = reduceBuffers([5, 0, 1000, 3, 70001]);
    expect(bufs.map((b) => b.length)).to.deep.equal([5, 0, 1000, 3, 70001]);
    if (floatKernelImplementation() === 'wasm-simd') expect(new Set(bufs.map((b) => b.buffer)).size).to.equal(1);
    for (const b of bufs) expect(b.every((v) => v === 0)).to.equal(true);
    const src = randomFloats(70001, 99);
    addInto(bufs[4], 0, src);
    addInto(bufs[2], 0, src, 1000);
    expect(same(bufs[4], src)).to.equal(true);
    expect(same(bufs[2], src.subarray(0, 1000))).to.equal(true);
    for (const i of [0, 3])
      expect(
        bufs[i].every((v) => v === 0),
        `buffer ${i}`,
      ).to.equal(true);
  });

  it('bytes read into the staging memory (at any alignment) add as bytes from anywhere do, into either kind of buffer', () => {
    for (const [, makeDst] of DESTINATIONS) {
      for (const n of [1, 5, 64, 65, 1000, 65535]) {
        for (const misalign of [0, 1, 2, 3]) {
          const start = randomFloats(n + 8, n + misalign * 7);
          const src = randomFloats(n, n + misalign * 7 + 50);
          const dst = makeDst(start);
          const staging = stagingFor(dst, 256 << 10);
          if (!staging) return; // no kernel: the plain loops, covered above
          expect(staging.length).to.equal(256 << 10);
          expect(stagingFor(dst, 100)!.length, 'no more than asked').to.equal(100);
          // As a socket read would land: the bytes to add start `misalign` bytes into the area.
          Buffer.from(src.buffer).copy(staging, misalign);
          addBytesInto(dst, 8, staging.subarray(misalign, misalign + n * 4));
          expect(same(dst, reference(start, 8, src)), `n=${n} misalign=${misalign}`).to.equal(true);
        }
      }
    }
  });
});
