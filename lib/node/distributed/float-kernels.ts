/**
 * The element-wise float32 loops of every reduction the workers run: dst += src (ring all-reduce,
 * parameter servers summing pushes) and dst /= n (averaging).
 *
 * V8 compiles a plain loop over typed arrays to scalar code, about 3 ns a float on the development
 * VM, which made the sum the largest CPU cost of an all-reduce after the kernel's own socket
 * copies. A WebAssembly kernel with 128-bit lanes handles four floats per instruction. The lanes
 * compute exactly what the loop computes (IEEE single precision, round to nearest), so results are
 * bit for bit the same either way (a NaN stays NaN; WebAssembly leaves its payload bits
 * unspecified). Where WebAssembly SIMD is unavailable, or TFOS_NO_WASM_SIMD=1, the plain loops run.
 *
 * WebAssembly can only address its own memory, so where the floats live decides the copies:
 *  - A buffer from `reduceBuffer()` lives in a WebAssembly memory of its own, beside a staging
 *    area. Sums into it run in place, and a socket reads the bytes to add straight into the
 *    staging area (`stagingFor`): no copy at all. The distributed optimizer's fused gradients are
 *    such buffers.
 *  - Any other Float32Array is staged piece by piece through the shared kernel's memory: copied
 *    in, summed, copied back (its source is read straight into staging too, where a socket can).
 * On 3 workers sharing 2 cores those staging copies were about a seventh of an all-reduce's CPU.
 */

/** Bytes of one staging area: one dialed socket read (auth.ts reads at most 256 KiB). */
const STAGE_BYTES = 256 << 10;
const STAGE_FLOATS = STAGE_BYTES / 4;
/** Past a staging area: the lanes of a piece rounded up to 16 bytes may read a little beyond it. */
const SLACK_BYTES = 64;
/** Under this many floats the plain loop runs: a few floats do not repay the call and the copies. */
const MIN_KERNEL_FLOATS = 64;
const PAGE_BYTES = 65536;
/** WebAssembly's 32-bit memories hold at most 4 GiB; larger buffers are plain arrays. */
const MAX_MEMORY_BYTES = 65536 * PAGE_BYTES;

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

/** Signed LEB128 (i32.const immediates). */
function sleb128(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const section = (id: number, bytes: number[]) => [id, ...leb128(bytes.length), ...bytes];
const name = (s: string) => [s.length, ...Buffer.from(s, 'ascii')];
const fnBody = (bytes: number[]) => [...leb128(bytes.length), ...bytes];

/**
 * Two functions over one imported memory (each memory gets its own instance), in text form:
 *
 *   (func $add (param $dst i32) (param $src i32) (param $bytes i32) (local $end i32) (local $end64 i32)
 *     ;; for (end64 = dst + (bytes & -64); dst < end64; dst += 64, src += 64)
 *     ;;   four times, at o = 0, 16, 32, 48:
 *     ;;     v128.store offset=o (dst, f32x4.add(v128.load offset=o (dst), v128.load offset=o (src)))
 *     ;; for (end = dst + bytes; dst < end; dst += 16, src += 16)  ;; the rest
 *     ;;   v128.store(dst, f32x4.add(v128.load(dst), v128.load(src)))
 *   (func $div (param $dst i32) (param $bytes i32) (param $by f32) (local $end i32) (local $v v128)
 *     ;; v = f32x4.splat(by); for (end = dst + bytes; dst < end; dst += 16)
 *     ;;   v128.store(dst, f32x4.div(v128.load(dst), v))
 *
 * `bytes` is a multiple of 16; pointers need no alignment. Exported as `add` and `div`.
 */
function assembleKernel(): Uint8Array {
  const [localGet, localSet, localTee] = [0x20, 0x21, 0x22];
  const [i32, f32, v128] = [0x7f, 0x7d, 0x7b];
  const [i32Const, i32Add, i32And, i32GeU, i32LtU] = [0x41, 0x6a, 0x71, 0x4f, 0x49];
  const [block, loop, brIf, end, emptyType] = [0x02, 0x03, 0x0d, 0x0b, 0x40];
  const simd = (op: number) => [0xfd, ...leb128(op)];
  // memarg: 16-byte alignment hint (only a hint: any address works), constant offset `at`.
  const v128Load = (at = 0) => [...simd(0x00), 4, ...leb128(at)];
  const v128Store = (at = 0) => [...simd(0x0b), 4, ...leb128(at)];
  const [f32x4Splat, f32x4Add, f32x4Div] = [simd(0x13), simd(0xe4), simd(0xe7)];
  /** Loops while pointer local `p` is below local `endLocal`, running `step` (which advances p). */
  const whileBelow = (p: number, endLocal: number, step: number[]) => [
    ...[block, emptyType, localGet, p, localGet, endLocal, i32GeU, brIf, 0],
    ...[loop, emptyType, ...step, localGet, endLocal, i32LtU, brIf, 0, end],
    end,
  ];
  const advance = (p: number, by: number, set: number) => [localGet, p, i32Const, ...sleb128(by), i32Add, set, p];

  const add = (() => {
    const [dst, src, bytes, endPtr, end64] = [0, 1, 2, 3, 4];
    const lane = (at: number) => [
      ...[localGet, dst, localGet, dst, ...v128Load(at), localGet, src, ...v128Load(at), ...f32x4Add, ...v128Store(at)],
    ];
    return [
      ...[1, 2, i32],
      ...[localGet, dst, localGet, bytes, i32Add, localSet, endPtr],
      // Four lanes per turn while 64 bytes are left (fewer loop branches), then one at a time.
      ...[localGet, dst, localGet, bytes, i32Const, ...sleb128(-64), i32And, i32Add, localSet, end64],
      ...whileBelow(dst, end64, [
        ...lane(0),
        ...lane(16),
        ...lane(32),
        ...lane(48),
        ...advance(src, 64, localSet),
        ...advance(dst, 64, localTee),
      ]),
      ...whileBelow(dst, endPtr, [...lane(0), ...advance(src, 16, localSet), ...advance(dst, 16, localTee)]),
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
        ...[localGet, dst, localGet, dst, ...v128Load(), localGet, vec, ...f32x4Div, ...v128Store()],
        ...advance(dst, 16, localTee),
      ]),
      end,
    ];
  })();
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, [2, 0x60, 3, i32, i32, i32, 0, 0x60, 3, i32, i32, f32, 0]), // (i32 i32 i32), (i32 i32 f32)
    ...section(2, [1, ...name('env'), ...name('mem'), 0x02, 0, 1]), // memory env.mem, at least 1 page
    ...section(3, [2, 0, 1]),
    ...section(7, [2, ...name('add'), 0x00, 0, ...name('div'), 0x00, 1]),
    ...section(10, [2, ...fnBody(add), ...fnBody(div)]),
  ]);
}

/** One instance of the kernel over its memory, with that memory's staging areas. */
interface KernelMemory {
  add: (dst: number, src: number, bytes: number) => void;
  div: (dst: number, bytes: number, by: number) => void;
  buffer: ArrayBuffer;
  f32: Float32Array;
  u8: Uint8Array;
  view: DataView;
  /** Byte offset of the source staging area (sockets read here; sources from elsewhere are copied here). */
  src: number;
  /** The source staging area as a Buffer (handed to every socket read, so made once). */
  staging: Buffer;
  /** Byte offset of the destination staging area, in the shared memory only (-1 in a buffer's own). */
  dst: number;
}

let compiled: WebAssembly.Module | null | undefined;

function instantiate(module: WebAssembly.Module, bytes: number, src: number, dst: number): KernelMemory {
  const mem = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE_BYTES)) });
  const inst = new WebAssembly.Instance(module, { env: { mem } });
  // The memory never grows, so these views stay valid.
  const buffer = mem.buffer;
  return {
    add: inst.exports.add as KernelMemory['add'],
    div: inst.exports.div as KernelMemory['div'],
    buffer,
    f32: new Float32Array(buffer),
    u8: new Uint8Array(buffer),
    view: new DataView(buffer),
    src,
    staging: Buffer.from(buffer, src, STAGE_BYTES),
    dst,
  };
}

let shared: KernelMemory | null = null;

/** The compiled kernel, once its lanes are proven; null where WebAssembly SIMD is unavailable or turned off. */
function kernelModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  if (process.env.TFOS_NO_WASM_SIMD === '1') return null;
  try {
    const module = new WebAssembly.Module(assembleKernel());
    // The shared memory: destination staging, then source staging.
    const k = instantiate(module, 2 * STAGE_BYTES + SLACK_BYTES, STAGE_BYTES, 0);
    // Proves the lanes (four at a time and the rest) before trusting them.
    const ones = Array.from({ length: 20 }, (_, i) => i + 1);
    k.f32.set(ones, k.dst / 4);
    k.f32.set(
      ones.map((v) => 10 * v),
      k.src / 4,
    );
    k.add(k.dst, k.src, 80);
    k.div(k.dst, 80, 11);
    if (ones.every((v, i) => k.f32[k.dst / 4 + i] === v)) {
      compiled = module;
      shared = k;
    }
  } catch {
    /* no WebAssembly SIMD in this runtime: the loops below */
  }
  return compiled;
}

/** The kernel plain Float32Arrays are staged through (made with the module). */
function sharedKernel(): KernelMemory | null {
  kernelModule();
  return shared;
}

/** Memories of the buffers reduceBuffer() made, by their ArrayBuffer. */
const ownMemories = new WeakMap<ArrayBufferLike, KernelMemory>();

/** Which implementation runs (for benchmarks and reports). */
export function floatKernelImplementation(): 'wasm-simd' | 'js' {
  return kernelModule() ? 'wasm-simd' : 'js';
}

/**
 * A zeroed Float32Array of `floats` whose sums and divisions run in place, without staging copies
 * (it lives in WebAssembly memory). It behaves as any Float32Array; only transferring its
 * ArrayBuffer to another thread is refused. Where the kernel is unavailable, or the memory would
 * exceed 4 GiB, it is an ordinary Float32Array.
 */
export function reduceBuffer(floats: number): Float32Array {
  return reduceBuffers([floats])[0];
}

/**
 * reduceBuffer for several lengths, sharing one WebAssembly memory: V8 reserves about 10 GiB of
 * address space per memory (its guard region; only what is used takes RAM), so a process keeps to
 * a few of them. Virtual-memory limits (`ulimit -v`, YARN's vmem check) count those reservations.
 */
export function reduceBuffers(lengths: number[]): Float32Array[] {
  const module = kernelModule();
  const offsets: number[] = [];
  let bytes = STAGE_BYTES + SLACK_BYTES;
  for (const n of lengths) {
    offsets.push(bytes);
    bytes += Math.ceil((n * 4) / 16) * 16; // each buffer on whole lanes
  }
  const plain = () => lengths.map((n) => new Float32Array(n));
  if (!module || bytes > MAX_MEMORY_BYTES) return plain();
  let k: KernelMemory;
  try {
    k = instantiate(module, bytes, 0, -1);
  } catch {
    return plain(); // the memory could not be reserved
  }
  ownMemories.set(k.buffer, k);
  return lengths.map((n, i) => new Float32Array(k.buffer, offsets[i], n));
}

/**
 * Where to read at most `maxBytes` bytes that will be added into `dst` (addBytesInto): a staging
 * area they are summed from where they land. Reused by the next read; undefined without the kernel.
 */
export function stagingFor(dst: Float32Array, maxBytes: number): Buffer | undefined {
  const k = ownMemories.get(dst.buffer) ?? sharedKernel();
  if (!k) return undefined;
  return maxBytes >= STAGE_BYTES ? k.staging : k.staging.subarray(0, maxBytes);
}

/** f32 at byte dst += f32 at byte src for n floats, both in k's memory (dst aligned, src anywhere). */
function addInMemory(k: KernelMemory, dst: number, src: number, n: number): void {
  const whole = n & ~3;
  if (whole) k.add(dst, src, whole * 4);
  for (let i = whole; i < n; i++) k.f32[dst / 4 + i] += k.view.getFloat32(src + i * 4, true);
}

/** Calls `piece(done, m)` for consecutive pieces of at most one staging area's floats covering [0, n). */
function forPieces(n: number, piece: (done: number, m: number) => void): void {
  for (let done = 0; done < n;) {
    const m = Math.min(STAGE_FLOATS, n - done);
    piece(done, m);
    done += m;
  }
}

/**
 * Runs the shared kernel over buf[at, at + n) piece by piece: each piece is copied into the
 * destination staging area, `run(done, m, bytes)` computes on its whole lanes (`bytes`), and the
 * piece is copied back. Lanes past a piece's end compute stale values that are never copied back.
 */
function throughSharedStaging(
  k: KernelMemory,
  buf: Float32Array,
  at: number,
  n: number,
  run: (done: number, m: number, bytes: number) => void,
): void {
  forPieces(n, (done, m) => {
    const out = buf.subarray(at + done, at + done + m);
    k.f32.set(out, k.dst / 4);
    run(done, m, ((m + 3) & ~3) * 4);
    out.set(k.f32.subarray(k.dst / 4, k.dst / 4 + m));
  });
}

/**
 * dst[at + i] += the i-th little-endian float32 of `src` for i < n, with the kernel: in place when
 * dst has its own memory, else staged through the shared one. `src` is read where it lies when it
 * is already in that memory (a staged socket read), else copied into its staging area.
 */
function addWithKernel(dst: Float32Array, at: number, src: Uint8Array, n: number): boolean {
  const own = ownMemories.get(dst.buffer);
  const k = own ?? sharedKernel();
  if (!k) return false;
  const inPlace = src.buffer === k.buffer;
  /** Byte offset in k's memory of src's floats [done, done + m). */
  const sourceAt = (done: number, m: number): number => {
    if (inPlace) return src.byteOffset + done * 4;
    k.u8.set(src.subarray(done * 4, (done + m) * 4), k.src);
    return k.src;
  };
  if (own) forPieces(n, (done, m) => addInMemory(k, dst.byteOffset + (at + done) * 4, sourceAt(done, m), m));
  else throughSharedStaging(k, dst, at, n, (done, m, bytes) => k.add(k.dst, sourceAt(done, m), bytes));
  return true;
}

function addLoop(dst: Float32Array, at: number, src: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dst[at + i] += src[i];
}

/** dst[at + i] += src[i] for i < n. */
export function addInto(dst: Float32Array, at: number, src: Float32Array, n = src.length): void {
  if (n >= MIN_KERNEL_FLOATS && addWithKernel(dst, at, new Uint8Array(src.buffer, src.byteOffset, n * 4), n)) return;
  addLoop(dst, at, src, n);
}

/** Aligned staging for the loop when source bytes do not start on a float boundary in memory. */
let scratch = new Float32Array(STAGE_FLOATS);

/**
 * dst[at + i] += the i-th little-endian float32 in `bytes` (whose length is a multiple of 4),
 * wherever the bytes lie in memory (socket chunks need not be 4-byte aligned).
 */
export function addBytesInto(dst: Float32Array, at: number, bytes: Uint8Array): void {
  const n = bytes.length >> 2;
  if (n >= MIN_KERNEL_FLOATS && addWithKernel(dst, at, bytes, n)) return;
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
  const own = ownMemories.get(buf.buffer);
  const k = n >= MIN_KERNEL_FLOATS ? (own ?? sharedKernel()) : null;
  if (!k) {
    for (let i = from; i < to; i++) buf[i] /= by;
    return;
  }
  if (own) {
    const whole = n & ~3;
    if (whole) k.div(buf.byteOffset + from * 4, whole * 4, by);
    for (let i = from + whole; i < to; i++) buf[i] /= by;
    return;
  }
  throughSharedStaging(k, buf, from, n, (_done, _m, bytes) => k.div(k.dst, bytes, by));
}
