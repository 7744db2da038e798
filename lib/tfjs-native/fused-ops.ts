/**
 * TensorFlow's fused convolution / matrix product + BiasAdd (+ Relu) kernels, one op each: what
 * Python TensorFlow's graphs run after Grappler's remapper. They take their fused operations as a
 * list(string) attribute (fused_ops) and the extra inputs' types as a list(type), which only our
 * patched tfjs-node binding can set (patches/tfjs-node-binding.patch, applied by `tfos setup`).
 *
 * Which ops a backend reaches is found on its first use with a one-element check of known value:
 * oneDNN's _MklNativeFusedConv2D / _MklNativeFusedMatMul on the CPU build (TensorFlow's generic
 * _FusedConv2D on CPU is slower than the three ops it replaces), _FusedConv2D / _FusedMatMul on
 * the GPU build. An unpatched binding or a TensorFlow without them gives none: the callers then run
 * the three separate ops. TFOS_TF_FUSED_OPS=0 turns them off (to measure what they bring).
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, NativeBackend, OpAttr, TF } from './native-op';

type Tensor = tfTypes.Tensor;
type Activation = 'relu' | 'linear';

interface FusedOps {
  conv: string;
  matMul: string;
  /** Extra attributes every call carries (oneDNN's kernel label). */
  extra: OpAttr[];
}

const found = new WeakMap<NativeBackend, FusedOps | null>();

const fusedOpsList = (activation: Activation) => (activation === 'relu' ? ['BiasAdd', 'Relu'] : ['BiasAdd']);

function runConv(
  b: NativeBackend,
  ops: FusedOps,
  x: Tensor,
  filter: Tensor,
  bias: Tensor,
  strides: [number, number],
  pad: string,
  activation: Activation,
): Tensor {
  const a = attrs(b);
  return b.executeSingleOutput(
    ops.conv,
    [
      a.type('T', 'float32'),
      a.int('num_args', 1),
      a.types('TArgs', ['float32']),
      a.ints('strides', [1, strides[0], strides[1], 1]),
      a.str('padding', pad.toUpperCase()),
      a.str('data_format', 'NHWC'),
      a.ints('dilations', [1, 1, 1, 1]),
      a.strs('fused_ops', fusedOpsList(activation)),
      ...ops.extra,
    ],
    [x, filter, bias],
  );
}

function runMatMul(b: NativeBackend, ops: FusedOps, x: Tensor, w: Tensor, bias: Tensor, activation: Activation): Tensor {
  const a = attrs(b);
  return b.executeSingleOutput(
    ops.matMul,
    [
      a.type('T', 'float32'),
      a.bool('transpose_a', false),
      a.bool('transpose_b', false),
      a.int('num_args', 1),
      a.strs('fused_ops', fusedOpsList(activation)),
      ...ops.extra,
    ],
    [x, w, bias],
  );
}

/** relu(2·3 − 7) = 0 and 2·3 + 1 = 7, through both ops: a candidate that errs or computes otherwise is not used. */
function works(tf: TF, b: NativeBackend, ops: FusedOps): boolean {
  const made: Tensor[] = [];
  const t = (v: number, shape: number[]) => {
    const x = tf.tensor(v, shape);
    made.push(x);
    return x;
  };
  try {
    const c = runConv(b, ops, t(2, [1, 1, 1, 1]), t(3, [1, 1, 1, 1]), t(-7, [1]), [1, 1], 'same', 'relu');
    const m = runMatMul(b, ops, t(2, [1, 1]), t(3, [1, 1]), t(1, [1]), 'linear');
    made.push(c, m);
    return c.dataSync()[0] === 0 && m.dataSync()[0] === 7;
  } catch {
    return false;
  } finally {
    tf.dispose(made);
  }
}

function fusedOps(tf: TF, b: NativeBackend): FusedOps | null {
  if (process.env.TFOS_TF_FUSED_OPS === '0') return null;
  let ops = found.get(b);
  if (ops === undefined) {
    const gpu = !!(b as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice;
    const candidate: FusedOps = gpu
      ? { conv: '_FusedConv2D', matMul: '_FusedMatMul', extra: [] }
      : { conv: '_MklNativeFusedConv2D', matMul: '_MklNativeFusedMatMul', extra: [attrs(b).str('_kernel', 'MklNameChangeOp')] };
    ops = works(tf, b, candidate) ? candidate : null;
    found.set(b, ops);
  }
  return ops;
}

/** Which fused ops `b` runs ('none' when unreachable); for logs and benchmarks. */
export function fusedOpsInUse(tf: TF, b: NativeBackend): string {
  const ops = fusedOps(tf, b);
  return ops ? `${ops.conv}, ${ops.matMul}` : 'none';
}

const pair = (v: number | [number, number]): [number, number] => (Array.isArray(v) ? v : [v, v]);

/** conv2d + bias (+ relu) as one TensorFlow op, or undefined when the backend has none. */
export function fusedConv2D(
  tf: TF,
  b: NativeBackend,
  x: Tensor,
  filter: Tensor,
  bias: Tensor,
  strides: number | [number, number],
  pad: string,
  activation: Activation,
): Tensor | undefined {
  const ops = fusedOps(tf, b);
  return ops ? runConv(b, ops, x, filter, bias, pair(strides), pad, activation) : undefined;
}

/** x·w + bias (+ relu) as one TensorFlow op, or undefined when the backend has none. */
export function fusedMatMul(tf: TF, b: NativeBackend, x: Tensor, w: Tensor, bias: Tensor, activation: Activation): Tensor | undefined {
  const ops = fusedOps(tf, b);
  return ops ? runMatMul(b, ops, x, w, bias, activation) : undefined;
}
