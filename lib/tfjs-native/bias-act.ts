/**
 * Convolution / matrix product + bias + activation as one op with one fused gradient, for the
 * layers every tfjs model is made of (tfjs-layers' Conv2D and Dense call tf.fused.conv2d /
 * tf.fused.matMul). While a gradient is being recorded, tfjs runs those unfused (conv, add,
 * relu: three taped ops, the relu's gradient through Step); here they stay one taped op:
 *   forward   Conv2D | MatMul → BiasAdd → Relu            (TensorFlow kernels)
 *   backward  ReluGrad once, then Conv2DBackpropInput/Filter | two MatMuls, and BiasAddGrad.
 * Anything else (NCHW, dilations, explicit padding, prelu, other activations, batched or
 * transposed products, another backend) goes to tfjs's own implementation unchanged.
 *
 * The forward is TensorFlow's one fused kernel when the backend reaches it (fused-ops.ts: oneDNN's
 * on CPU, _FusedConv2D/_FusedMatMul on GPU; it needs our binding patch), else three ops.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { conv2dFilterGrad } from './conv-grad';
import { fusedConv2D, fusedMatMul } from './fused-ops';
import { attrs, hasKernel, NativeBackend, registerNativeKernel, TF } from './native-op';
import { reluGrad } from './relu';

type Tensor = tfTypes.Tensor;
export const CONV_BIAS_ACT = 'TfosConv2DBiasAct';
export const MATMUL_BIAS_ACT = 'TfosMatMulBiasAct';
export const BIAS_ADD_GRAD = 'TfosBiasAddGrad';
const ORIGINAL = Symbol.for('tfjs-on-spark.original-fused');

type FusedConvArgs = Parameters<TF['fused']['conv2d']>[0];
type FusedMatMulArgs = Parameters<TF['fused']['matMul']>[0];
type Activation = 'relu' | 'linear';

function simpleActivation(a: unknown): Activation | undefined {
  if (a == null || a === 'linear') return 'linear';
  if (a === 'relu') return 'relu';
  return undefined;
}

const isOnes = (d: unknown) => d == null || d === 1 || (Array.isArray(d) && d.every((v) => v === 1));
const isTensor = (tf: TF, t: unknown): t is Tensor => t instanceof tf.Tensor;

/** Sum of dy over every axis but the last: the bias gradient. */
export function biasAddGrad(tf: TF, dy: Tensor): Tensor {
  if (hasKernel(tf, BIAS_ADD_GRAD)) return tf.engine().runKernel(BIAS_ADD_GRAD, { dy }) as Tensor;
  return tf.sum(dy, [...Array(dy.rank - 1).keys()]);
}

function biasAct(b: NativeBackend, y: Tensor, bias: Tensor, activation: Activation): Tensor {
  const a = attrs(b);
  const biased = b.executeSingleOutput('BiasAdd', [a.type('T', y.dtype), a.str('data_format', 'NHWC')], [y, bias]);
  if (activation === 'linear') return biased;
  const out = b.executeSingleOutput('Relu', [a.type('T', y.dtype)], [biased]);
  biased.dispose();
  return out;
}

export function registerBiasAct(tf: TF): void {
  registerNativeKernel(tf, BIAS_ADD_GRAD, (b, { dy }) => {
    const a = attrs(b);
    return b.executeSingleOutput('BiasAddGrad', [a.type('T', dy.dtype), a.str('data_format', 'NHWC')], [dy]);
  });
  registerNativeKernel(tf, CONV_BIAS_ACT, (b, { x, filter, bias }, at) => {
    const fused = fusedConv2D(
      tf,
      b,
      x,
      filter,
      bias,
      at.strides as number | [number, number],
      at.pad as string,
      at.activation as Activation,
    );
    if (fused) return fused;
    const conv = tf
      .engine()
      .runKernel('Conv2D', { x, filter }, { strides: at.strides, pad: at.pad, dataFormat: 'NHWC', dilations: [1, 1] } as never) as Tensor;
    const out = biasAct(b, conv, bias, at.activation as Activation);
    conv.dispose();
    return out;
  });
  registerNativeKernel(tf, MATMUL_BIAS_ACT, (b, { a: x, b: w, bias }, at) => {
    const fused = fusedMatMul(tf, b, x, w, bias, at.activation as Activation);
    if (fused) return fused;
    const a = attrs(b);
    const prod = b.executeSingleOutput(
      'MatMul',
      [a.type('T', x.dtype), a.bool('transpose_a', false), a.bool('transpose_b', false)],
      [x, w],
    );
    const out = biasAct(b, prod, bias, at.activation as Activation);
    prod.dispose();
    return out;
  });

  const dyAct = (dy: Tensor, y: Tensor, activation: Activation) => (activation === 'relu' ? reluGrad(tf, dy, y) : dy);
  tf.registerGradient({
    kernelName: CONV_BIAS_ACT,
    inputsToSave: ['x', 'filter', 'bias'],
    outputsToSave: [true],
    gradFunc: (dy, saved, at) => {
      const [x, filter, , y] = saved;
      const g = dyAct(dy as Tensor, y, (at as { activation: Activation }).activation);
      const { strides, pad } = at as { strides: number | [number, number]; pad: 'same' | 'valid' };
      const common = { strides, pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
      return {
        x: () => tf.engine().runKernel('Conv2DBackpropInput', { dy: g, filter }, { ...common, inputShape: x.shape } as never) as Tensor,
        filter: () => conv2dFilterGrad(tf, x, g, filter.shape, strides, pad),
        bias: () => biasAddGrad(tf, g),
      };
    },
  });
  tf.registerGradient({
    kernelName: MATMUL_BIAS_ACT,
    inputsToSave: ['a', 'b'],
    outputsToSave: [true],
    gradFunc: (dy, saved, at) => {
      const [x, w, y] = saved;
      const g = dyAct(dy as Tensor, y, (at as { activation: Activation }).activation);
      return {
        a: () => tf.matMul(g, w, false, true),
        b: () => tf.matMul(x, g, true, false),
        bias: () => biasAddGrad(tf, g),
      };
    },
  });

  const fused = tf.fused as TF['fused'] & { [ORIGINAL]?: { conv2d: TF['fused']['conv2d']; matMul: TF['fused']['matMul'] } };
  if (fused[ORIGINAL]) return;
  const original = { conv2d: fused.conv2d, matMul: fused.matMul };
  fused[ORIGINAL] = original;

  fused.conv2d = function conv2dBiasAct(args: FusedConvArgs) {
    const activation = simpleActivation(args.activation);
    const { x, filter, bias } = args;
    const usable =
      hasKernel(tf, CONV_BIAS_ACT) &&
      activation !== undefined &&
      isTensor(tf, x) &&
      x.rank === 4 &&
      x.dtype === 'float32' &&
      isTensor(tf, filter) &&
      filter.rank === 4 &&
      isTensor(tf, bias) &&
      bias.rank === 1 &&
      bias.shape[0] === filter.shape[3] &&
      (args.dataFormat ?? 'NHWC') === 'NHWC' &&
      isOnes(args.dilations) &&
      (args.pad === 'same' || args.pad === 'valid') &&
      args.preluActivationWeights == null;
    if (!usable) return original.conv2d(args);
    return tf
      .engine()
      .runKernel(CONV_BIAS_ACT, { x, filter, bias }, { strides: args.strides, pad: args.pad, activation } as never) as never;
  } as TF['fused']['conv2d'];

  fused.matMul = function matMulBiasAct(args: FusedMatMulArgs) {
    const activation = simpleActivation(args.activation);
    const { a, b, bias } = args;
    const usable =
      hasKernel(tf, MATMUL_BIAS_ACT) &&
      activation !== undefined &&
      isTensor(tf, a) &&
      a.rank === 2 &&
      a.dtype === 'float32' &&
      isTensor(tf, b) &&
      b.rank === 2 &&
      isTensor(tf, bias) &&
      bias.rank === 1 &&
      bias.shape[0] === b.shape[1] &&
      !args.transposeA &&
      !args.transposeB &&
      args.preluActivationWeights == null;
    if (!usable) return original.matMul(args);
    return tf.engine().runKernel(MATMUL_BIAS_ACT, { a, b, bias }, { activation } as never) as never;
  } as TF['fused']['matMul'];
}
