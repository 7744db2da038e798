/**
 * The convolution's filter gradient through oneDNN's _MklNativeConv2DBackpropFilter, as Python
 * TensorFlow's x86 graphs run it (their oneDNN pass rewrites every Conv2DBackpropFilter). Eagerly,
 * TensorFlow keeps some shapes on its generic kernel: the first layer's, with 3 input channels, was
 * about 4× slower there (11.5 vs 2.9 ms on the seed net's 24×24×3 → 64, 5×5).
 *
 * Used by the fused conv + bias + relu gradient (bias-act.ts) and by tfjs's plain conv2d, whose
 * gradient is taken over for NHWC, undilated, 'same'/'valid' convolutions (the input's gradient
 * stays tfjs's Conv2DBackpropInput). CPU build only; the first failure (a TensorFlow without
 * oneDNN) switches back to tfjs's Conv2DBackpropFilter for good.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, hasKernel, registerNativeKernel, TF } from './native-op';

type Tensor = tfTypes.Tensor;
export const CONV_FILTER_GRAD = 'TfosConv2DBackpropFilter';

type Strides = number | [number, number];
const pair = (v: Strides): [number, number] => (Array.isArray(v) ? v : [v, v]);
const isOnes = (d: unknown) => d == null || d === 1 || (Array.isArray(d) && d.every((v) => v === 1));
let oneDnnWorks: boolean | undefined;

function tfjsFilterGrad(tf: TF, x: Tensor, dy: Tensor, filterShape: number[], strides: Strides, pad: string): Tensor {
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape } as never) as Tensor;
}

/** The gradient of conv2d(x, filter) with respect to the filter, for NHWC 'same'/'valid' convolutions. */
export function conv2dFilterGrad(tf: TF, x: Tensor, dy: Tensor, filterShape: number[], strides: Strides, pad: string): Tensor {
  const usable =
    oneDnnWorks !== false &&
    hasKernel(tf, CONV_FILTER_GRAD) &&
    !(tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice &&
    x.dtype === 'float32' &&
    (pad === 'same' || pad === 'valid');
  if (usable) {
    try {
      const g = tf.engine().runKernel(CONV_FILTER_GRAD, { x, dy }, { strides, pad, filterShape } as never) as Tensor;
      oneDnnWorks = true;
      return g;
    } catch (err) {
      if (oneDnnWorks) throw err; // worked before: a real error
      oneDnnWorks = false;
    }
  }
  return tfjsFilterGrad(tf, x, dy, filterShape, strides, pad);
}

export function registerConvGrad(tf: TF): void {
  registerNativeKernel(tf, CONV_FILTER_GRAD, (b, { x, dy }, at) => {
    const a = attrs(b);
    const [sh, sw] = pair(at.strides as Strides);
    const sizes = tf.tensor1d(at.filterShape as number[], 'int32');
    try {
      return b.executeSingleOutput(
        '_MklNativeConv2DBackpropFilter',
        [
          a.type('T', 'float32'),
          a.ints('strides', [1, sh, sw, 1]),
          a.str('padding', String(at.pad).toUpperCase()),
          a.str('data_format', 'NHWC'),
          a.ints('dilations', [1, 1, 1, 1]),
          a.str('_kernel', 'MklNameChangeOp'),
        ],
        [x, sizes, dy],
      );
    } finally {
      sizes.dispose();
    }
  });

  tf.registerGradient({
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, at) => {
      const [x, filter] = saved;
      const { strides, pad, dataFormat, dilations, dimRoundingMode } = at as unknown as {
        strides: Strides;
        pad: unknown;
        dataFormat?: string;
        dilations?: unknown;
        dimRoundingMode?: string;
      };
      if (!isOnes(dilations)) throw new Error(`gradient of conv2d: dilation rates above 1 are not supported, got ${String(dilations)}`);
      const nhwc = (dataFormat ?? 'NHWC') === 'NHWC';
      const common = { strides, pad, dataFormat: dataFormat ?? 'NHWC', dimRoundingMode };
      return {
        x: () =>
          tf.engine().runKernel('Conv2DBackpropInput', { dy: dy as Tensor, filter }, { ...common, inputShape: x.shape } as never) as Tensor,
        filter: () =>
          nhwc && (pad === 'same' || pad === 'valid') && dimRoundingMode == null
            ? conv2dFilterGrad(tf, x, dy as Tensor, filter.shape, strides, pad)
            : (tf
                .engine()
                .runKernel('Conv2DBackpropFilter', { x, dy: dy as Tensor }, { ...common, filterShape: filter.shape } as never) as Tensor),
      };
    },
  });
}
