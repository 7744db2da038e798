/**
 * The element-wise float32 loops of every reduction the workers run: dst += src (ring all-reduce,
 * parameter servers summing pushes) and dst /= n (averaging).
 *
 * V8 compiles a plain loop over typed arrays to scalar code, about 3 ns a float on the development
 * VM, which made the sum the largest CPU cost of an all-reduce after the kernel's own socket
 * copies. A WebAssembly kernel with 128-bit lanes handles four floats per instruction. WebAssembly
 * cannot address a JavaScript array, so each piece (at most 64 KiB of a socket read) is staged
 * through the kernel's own memory; even with those copies the sum runs 2.5× faster
 * (`npm run bench -- allreduce`). The lanes compute exactly what the loop computes (IEEE single
 * precision, round to nearest), so results are bit for bit the same either way (a NaN stays NaN;
 * WebAssembly leaves its payload bits unspecified). Where WebAssembly SIMD is unavailable, or
 * TFOS_NO_WASM_SIMD=1, the plain loops run.
 */

/** Floats per staged piece: one default socket read (64 KiB); larger reads go in several pieces. */
const STAGE_FLOATS = 16384;
const STAGE_BYTES = STAGE_FLOATS * 4;
/** Under this many floats the plain loop runs: a few floats do not repay the call and the copies. */
const MIN_KERNEL_FLOATS = 64;
/** Staging offsets in the kernel's memory. */
const DST = 0;
const SRC = STAGE_BYTES;

// ---- the module, assembled here (no toolchain at build time) ---------------------------------

function leb128(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

const section = (id: number, bytes: number[]) => [id, ...leb128(bytes.length), ...bytes];
const name = (s: string) => [s.length, ...Buffer.from(s, 'ascii')];
const fnBody = (bytes: number[]) => [...leb128(bytes.length), ...bytes];

/**
 * Two functions over one memory of two 64 KiB pages (destination and source staging), in text form:
 *
 *   (func $add (param $dst i32) (param $src i32) (param $bytes i32) (local $end i32)
 *     ;; for (end = dst + bytes; dst < end; dst += 16, src += 16)
 *     ;;   v128.store(dst, f32x4.add(v128.load(dst), v128.load(src)))
 *   (func $div (param $dst i32) (param $bytes i32) (param $by f32) (local $end i32) (local $v v128)
 *     ;; v = f32x4.splat(by); for (end = dst + bytes; dst < end; dst += 16)
 *     ;;   v128.store(dst, f32x4.div(v128.load(dst), v))
 *
 * `bytes` is a multiple of 16; exported as `add`, `div` and `mem`.
 */
function kernelModule(): Uint8Array {
  const [localGet, localSet, localTee] = [0x20, 0x21, 0x22];
  const [i32, f32, v128] = [0x7f, 0x7d, 0x7b];
  const [i32Const, i32Add, i32GeU, i32LtU] = [0x41, 0x6a, 0x4f, 0x49];
  const [block, loop, brIf, end, emptyType] = [0x02, 0x03, 0x0d, 0x0b, 0x40];
  const simd = (op: number) => [0xfd, ...leb128(op)];
  const v128Load = [...simd(0x00), 4, 0]; // memarg: 16-byte alignment hint, offset 0
  const v128Store = [...simd(0x0b), 4, 0];
  const [f32x4Splat, f32x4Add, f32x4Div] = [simd(0x13), simd(0xe4), simd(0xe7)];
  /** Loops while pointer local `p` is below local `endLocal`, running `step` (which advances p). */
  const whileBelow = (p: number, endLocal: number, step: number[]) => [
    ...[block, emptyType, localGet, p, localGet, endLocal, i32GeU, brIf, 0],
    ...[loop, emptyType, ...step, localGet, endLocal, i32LtU, brIf, 0, end],
    end,
  ];
  const advance = (p: number, set: number) => [localGet, p, i32Const, 16, i32Add, set, p];

  const add = (() => {
    const [dst, src, bytes, endPtr] = [0, 1, 2, 3];
    return [
      ...[1, 1, i32],
      ...[localGet, dst, localGet, bytes, i32Add, localSet, endPtr],
      ...whileBelow(dst, endPtr, [
        ...[localGet, dst, localGet, dst, ...v128Load, localGet, src, ...v128Load, ...f32x4Add, ...v128Store],
        ...advance(src, localSet),
        ...advance(dst, localTee),
      ]),
      end,
    ];
  })();
  const div = (() => {
    const [dst, bytes, by, endPtr, vec] = [0, 1, 2, 3, 4];
    return [
      ...[2, 1, i32, 1, v128],
      ...[localGet, dst, localGet, bytes, i32Add, localSet, endPtr],
      ...[localGet, by, ...f32x4Splat, localSet, vec],
      ...whileBelow(dst, endPtr, [
        ...[localGet, dst, localGet, dst, ...v128Load, localGet, vec, ...f32x4Div, ...v128Store],
        ...advance(dst, localTee),
      ]),
      end,
    ];
  })();
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, [2, 0x60, 3, i32, i32, i32, 0, 0x60, 3, i32, i32, f32, 0]), // (i32 i32 i32), (i32 i32 f32)
    ...section(3, [2, 0, 1]),
    ...section(5, [1, 0, 2]), // one memory, 2 pages, no maximum
    ...section(7, [3, ...name('mem'), 0x02, 0, ...name('add'), 0x00, 0, ...name('div'), 0x00, 1]),
    ...section(10, [2, ...fnBody(add), ...fnBody(div)]),
  ]);
}

interface Kernel {
  add: (dst: number, src: number, bytes: number) => void;
  div: (dst: number, bytes: number, by: number) => void;
  f32: Float32Array;
  u8: Uint8Array;
}

let kernel: Kernel | null | undefined;

function loadKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  kernel = null;
  if (process.env.TFOS_NO_WASM_SIMD === '1') return kernel;
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(kernelModule()));
    const mem = inst.exports.mem as WebAssembly.Memory;
    const k: Kernel = {
      add: inst.exports.add as Kernel['add'],
      div: inst.exports.div as Kernel['div'],
      f32: new Float32Array(mem.buffer),
      u8: new Uint8Array(mem.buffer),
    };
    // Proves the lanes before trusting them.
    k.f32.set([1, 2, 3, 4], DST / 4);
    k.f32.set([10, 20, 30, 40], SRC / 4);
    k.add(DST, SRC, 16);
    k.div(DST, 16, 11);
    if (k.f32[0] === 1 && k.f32[1] === 2 && k.f32[3] === 4) kernel = k;
  } catch {
    /* no WebAssembly SIMD in this runtime: the loops below */
  }
  return kernel;
}

/** Which implementation runs (for benchmarks and reports). */
export function floatKernelImplementation(): 'wasm-simd' | 'js' {
  return loadKernel() ? 'wasm-simd' : 'js';
}

function addLoop(dst: Float32Array, at: number, src: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dst[at + i] += src[i];
}

/**
 * Stages dst[at, at + n) into the kernel's memory piece by piece: copies a piece of m floats in,
 * calls `run(done, m, bytes)` (which stages the piece's source, if any, and runs the kernel over
 * `bytes`, the piece rounded up to whole lanes), and copies the piece back. Lanes past a piece's
 * end hold stale values; they are computed but never copied out.
 */
function staged(k: Kernel, dst: Float32Array, at: number, n: number, run: (done: number, m: number, bytes: number) => void): void {
  for (let done = 0; done < n;) {
    const m = Math.min(STAGE_FLOATS, n - done);
    const out = dst.subarray(at + done, at + done + m);
    k.f32.set(out, DST / 4);
    run(done, m, ((m + 3) & ~3) * 4);
    out.set(k.f32.subarray(DST / 4, DST / 4 + m));
    done += m;
  }
}

/** dst[at + i] += src[i] for i < n. */
export function addInto(dst: Float32Array, at: number, src: Float32Array, n = src.length): void {
  const k = n >= MIN_KERNEL_FLOATS ? loadKernel() : null;
  if (!k) return addLoop(dst, at, src, n);
  staged(k, dst, at, n, (done, m, bytes) => {
    k.f32.set(src.subarray(done, done + m), SRC / 4);
    k.add(DST, SRC, bytes);
  });
}

/** Aligned staging for the loop when source bytes do not start on a float boundary in memory. */
let scratch = new Float32Array(STAGE_FLOATS);

/**
 * dst[at + i] += the i-th little-endian float32 in `bytes` (whose length is a multiple of 4),
 * wherever the bytes lie in memory (socket chunks need not be 4-byte aligned).
 */
export function addBytesInto(dst: Float32Array, at: number, bytes: Uint8Array): void {
  const n = bytes.length >> 2;
  const k = n >= MIN_KERNEL_FLOATS ? loadKernel() : null;
  if (k) {
    staged(k, dst, at, n, (done, m, lanes) => {
      k.u8.set(bytes.subarray(done * 4, (done + m) * 4), SRC);
      k.add(DST, SRC, lanes);
    });
    return;
  }
  let src: Float32Array;
  if (bytes.byteOffset % 4 === 0) src = new Float32Array(bytes.buffer, bytes.byteOffset, n);
  else {
    if (scratch.length < n) scratch = new Float32Array(n);
    new Uint8Array(scratch.buffer, 0, n * 4).set(bytes.subarray(0, n * 4));
    src = scratch;
  }
  addLoop(dst, at, src, n);
}

/** buf[i] /= by for from <= i < to (division, not multiplication by 1/by: the same floats as the loop). */
export function divideRange(buf: Float32Array, from: number, to: number, by: number): void {
  const n = to - from;
  const k = n >= MIN_KERNEL_FLOATS ? loadKernel() : null;
  if (!k) {
    for (let i = from; i < to; i++) buf[i] /= by;
    return;
  }
  staged(k, buf, from, n, (_done, _m, bytes) => k.div(DST, bytes, by));
}
