/**
 * dst[at + i] += src[i]: the inner loop of every reduction the workers run (ring all-reduce,
 * parameter servers summing pushes).
 *
 * V8 compiles the plain loop to scalar code, about 3 ns a float on the development VM, which made
 * it the largest CPU cost of an all-reduce after the kernel's own socket copies. A WebAssembly
 * kernel with 128-bit lanes adds four floats per instruction; WebAssembly cannot address a
 * JavaScript array, so each piece (at most one socket read, 64 KiB) is staged through the
 * kernel's own memory, and even with those copies the sum runs 2.5× faster (bench: allreduce).
 * Where WebAssembly SIMD is unavailable the plain loop runs.
 */

/** Floats per staged piece: one socket read (libuv reads 64 KiB at a time). */
const STAGE_FLOATS = 16384;
const STAGE_BYTES = STAGE_FLOATS * 4;
/** Below this many floats the call and the copies cost more than the loop. */
const MIN_KERNEL_FLOATS = 64;

// ---- the kernel: one function, add(dst, src, bytes), over its own memory -------------------

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

/**
 * The module, assembled here (no toolchain at build time). Its one function, in text form:
 *
 *   (func $add (param $dst i32) (param $src i32) (param $bytes i32) (local $end i32)
 *     end = dst + bytes                  ;; bytes: a multiple of 16
 *     block  br_if 0 (dst >= end)
 *       loop
 *         v128.store(dst, f32x4.add(v128.load(dst), v128.load(src)))
 *         dst += 16; src += 16
 *         br_if 0 (dst < end)
 *       end
 *     end)
 *
 * exported as `add`, with its memory (two 64 KiB pages: destination and source staging) as `mem`.
 */
function kernelModule(): Uint8Array {
  const [localGet, localSet, localTee] = [0x20, 0x21, 0x22];
  const [i32, i32Const, i32Add, i32GeU, i32LtU] = [0x7f, 0x41, 0x6a, 0x4f, 0x49];
  const [block, loop, brIf, end, emptyType] = [0x02, 0x03, 0x0d, 0x0b, 0x40];
  const simd = 0xfd;
  const v128Load = [simd, 0x00, 4, 0]; // memarg: 16-byte alignment hint, offset 0
  const v128Store = [simd, 0x0b, 4, 0];
  const f32x4Add = [simd, ...leb128(228)];
  const [dst, src, bytes, endPtr] = [0, 1, 2, 3];
  const body = [
    ...[1, 1, i32], // one local: the end pointer
    ...[localGet, dst, localGet, bytes, i32Add, localSet, endPtr],
    ...[block, emptyType],
    ...[localGet, dst, localGet, endPtr, i32GeU, brIf, 0],
    ...[loop, emptyType],
    ...[localGet, dst],
    ...[localGet, dst, ...v128Load],
    ...[localGet, src, ...v128Load],
    ...f32x4Add,
    ...v128Store,
    ...[localGet, dst, i32Const, 16, i32Add, localTee, dst],
    ...[localGet, src, i32Const, 16, i32Add, localSet, src],
    ...[localGet, endPtr, i32LtU, brIf, 0],
    ...[end, end, end],
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, [1, 0x60, 3, i32, i32, i32, 0]), // type 0: (i32, i32, i32) -> ()
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0, 2]), // one memory, 2 pages, no maximum
    ...section(7, [2, ...name('mem'), 0x02, 0, ...name('add'), 0x00, 0]),
    ...section(10, [1, ...leb128(body.length), ...body]),
  ]);
}

interface Kernel {
  add: (dst: number, src: number, bytes: number) => void;
  f32: Float32Array;
  u8: Uint8Array;
}

/** Staging offsets in the kernel's memory. */
const DST = 0;
const SRC = STAGE_BYTES;

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
      f32: new Float32Array(mem.buffer),
      u8: new Uint8Array(mem.buffer),
    };
    // Proves the lanes before trusting them.
    k.f32.set([1, 2, 3, 4], DST / 4);
    k.f32.set([10, 20, 30, 40], SRC / 4);
    k.add(DST, SRC, 16);
    if (k.f32[0] === 11 && k.f32[3] === 44) kernel = k;
  } catch {
    /* no WebAssembly SIMD in this runtime: the loop below */
  }
  return kernel;
}

/** Which implementation runs (for benchmarks and reports). */
export function floatAddImplementation(): 'wasm-simd' | 'js' {
  return loadKernel() ? 'wasm-simd' : 'js';
}

function addLoop(dst: Float32Array, at: number, src: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dst[at + i] += src[i];
}

/** dst[at + i] += src[i] for i < n. */
export function addInto(dst: Float32Array, at: number, src: Float32Array, n = src.length): void {
  const k = n >= MIN_KERNEL_FLOATS ? loadKernel() : null;
  if (!k) return addLoop(dst, at, src, n);
  for (let done = 0; done < n; ) {
    const m = Math.min(STAGE_FLOATS, n - done);
    const out = dst.subarray(at + done, at + done + m);
    k.f32.set(out, DST / 4);
    k.f32.set(src.subarray(done, done + m), SRC / 4);
    // Lanes past m hold stale values; they are added but never copied out.
    k.add(DST, SRC, ((m + 3) & ~3) * 4);
    out.set(k.f32.subarray(DST / 4, DST / 4 + m));
    done += m;
  }
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
  if (!k) {
    let src: Float32Array;
    if (bytes.byteOffset % 4 === 0) src = new Float32Array(bytes.buffer, bytes.byteOffset, n);
    else {
      if (scratch.length < n) scratch = new Float32Array(n);
      new Uint8Array(scratch.buffer, 0, n * 4).set(bytes.subarray(0, n * 4));
      src = scratch;
    }
    return addLoop(dst, at, src, n);
  }
  for (let done = 0; done < n; ) {
    const m = Math.min(STAGE_FLOATS, n - done);
    const out = dst.subarray(at + done, at + done + m);
    k.f32.set(out, DST / 4);
    k.u8.set(bytes.subarray(done * 4, (done + m) * 4), SRC);
    // Lanes past m hold stale values; they are added but never copied out.
    k.add(DST, SRC, ((m + 3) & ~3) * 4);
    out.set(k.f32.subarray(DST / 4, DST / 4 + m));
    done += m;
  }
}
