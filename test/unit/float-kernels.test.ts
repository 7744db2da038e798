/**
 * The reduction kernels (dst += src, dst /= n over float32) give exactly the plain loops' floats,
 * through the WebAssembly lanes and the staging around them: every length around the lane width and
 * the staging piece, any destination offset, source bytes at any memory alignment.
 */
import { expect } from 'chai';
import { addBytesInto, addInto, divideRange, floatKernelImplementation } from '../../lib/node/distributed/float-kernels';

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

const LENGTHS = [0, 1, 3, 4, 5, 63, 64, 65, 67, 1000, 16383, 16384, 16385, 16388, 40001];

describe('the float32 reduction kernels', () => {
  it('runs on WebAssembly SIMD in this Node (unless TFOS_NO_WASM_SIMD=1)', () => {
    expect(floatKernelImplementation()).to.equal(process.env.TFOS_NO_WASM_SIMD === '1' ? 'js' : 'wasm-simd');
  });

  it('addInto matches the plain loop bit for bit at every length and offset, leaving other floats alone', () => {
    for (const n of LENGTHS) {
      for (const at of [0, 1, 7]) {
        const dst = randomFloats(n + at + 5, n * 31 + at);
        const src = randomFloats(n, n * 17 + at + 1);
        const want = reference(dst, at, src);
        addInto(dst, at, src);
        expect(Buffer.from(dst.buffer).equals(Buffer.from(want.buffer)), `n=${n} at=${at}`).to.equal(true);
      }
    }
  });

  it('addBytesInto reads little-endian floats from bytes at any memory alignment', () => {
    for (const n of LENGTHS) {
      for (const misalign of [0, 1, 2, 3]) {
        const dst = randomFloats(n + 9, n + misalign);
        const src = randomFloats(n, n + misalign + 100);
        const bytes = Buffer.alloc(n * 4 + misalign).subarray(misalign);
        Buffer.from(src.buffer).copy(bytes);
        const want = reference(dst, 9, src);
        addBytesInto(dst, 9, bytes);
        expect(Buffer.from(dst.buffer).equals(Buffer.from(want.buffer)), `n=${n} misalign=${misalign}`).to.equal(true);
      }
    }
  });

  it('keeps NaN, infinities and signed zeros as the loop does', () => {
    const dst = Float32Array.from([NaN, Infinity, -Infinity, -0, 0, 1, Infinity, 3.4e38, ...new Array<number>(64).fill(1)]);
    const src = Float32Array.from([1, 1, -1, -0, -0, NaN, -Infinity, 3.4e38, ...new Array<number>(64).fill(-1)]);
    const want = reference(dst, 0, src);
    addInto(dst, 0, src);
    expect(Buffer.from(dst.buffer).equals(Buffer.from(want.buffer))).to.equal(true);
  });

  it('divideRange divides exactly as the loop does (not by multiplying with 1/n), only inside the range', () => {
    for (const n of LENGTHS) {
      for (const by of [2, 3, 7]) {
        const buf = randomFloats(n + 10, n * 7 + by);
        const want = buf.slice();
        for (let i = 4; i < 4 + n; i++) want[i] /= by;
        divideRange(buf, 4, 4 + n, by);
        expect(Buffer.from(buf.buffer).equals(Buffer.from(want.buffer)), `n=${n} by=${by}`).to.equal(true);
      }
    }
  });
});
