/**
 * Batch normalization in training as TensorFlow's FusedBatchNormV3 / FusedBatchNormGradV3: one
 * kernel forward, one backward. tfjs-layers' BatchNormalization builds it from moments (Mean,
 * SquaredDifference, Mean) and a normalization, and the gradient of both from dozens of Mul, Sum,
 * Sub, Tile and Reshape kernels over the whole activation map.
 *
 * The layer's call is taken over only in training, for NHWC inputs normalized over the last axis
 * with both scale (gamma) and offset (beta), float32; it keeps tfjs's moving-average update and its
 * biased batch variance (TensorFlow's batch_variance output is Bessel-corrected; it is scaled
 * back by (n−1)/n). Everything else runs the layer's own code.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, hasKernel, NativeBackend, registerNativeKernel, TF } from './native-op';

type Tensor = tfTypes.Tensor;
export const BATCH_NORM_TRAINING = 'TfosFusedBatchNormTraining';
const ORIGINAL = Symbol.for('tfjs-on-spark.original-batchnorm-call');

function bnAttrs(b: NativeBackend, epsilon: number, training: boolean) {
  const a = attrs(b);
  return [
    a.type('T', 'float32'),
    a.type('U', 'float32'),
    a.float('epsilon', epsilon),
    a.str('data_format', 'NHWC'),
    a.bool('is_training', training),
  ];
}

interface LayerVariableLike {
  read(): Tensor;
  write(t: Tensor): void;
}
interface BatchNormLayer {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: LayerVariableLike | null;
  beta: LayerVariableLike | null;
  movingMean: LayerVariableLike;
  movingVariance: LayerVariableLike;
  call(inputs: Tensor | Tensor[], kwargs: Record<string, unknown>): Tensor;
}

export function registerBatchNorm(tf: TF): void {
  // Outputs: y, batch mean, biased batch variance, then TensorFlow's three reserve spaces for the gradient.
  registerNativeKernel(tf, BATCH_NORM_TRAINING, (b, { x, scale, offset }, at) => {
    const epsilon = at.epsilon as number;
    const empty = tf.tensor1d([], 'float32');
    const [y, mean, unbiased, r1, r2, r3] = b.executeMultipleOutputs(
      'FusedBatchNormV3',
      [...bnAttrs(b, epsilon, true), attrs(b).float('exponential_avg_factor', 1)],
      [x, scale, offset, empty, empty],
      6,
    );
    empty.dispose();
    const n = x.size / x.shape[x.rank - 1];
    const correction = tf.scalar(n > 1 ? (n - 1) / n : 1);
    const variance = b.executeSingleOutput('Mul', [attrs(b).type('T', 'float32')], [unbiased, correction]);
    tf.dispose([unbiased, correction]);
    return [y, mean, variance, r1, r2, r3];
  });
  tf.registerGradient({
    kernelName: BATCH_NORM_TRAINING,
    inputsToSave: ['x', 'scale'],
    outputsToSave: [false, false, false, true, true, true],
    gradFunc: (dys, saved, at) => {
      // Only y's gradient flows: the batch statistics feed the moving averages, not the loss.
      const dy = (dys as Tensor[])[0];
      const [x, scale, r1, r2, r3] = saved;
      const b = tf.backend() as unknown as NativeBackend;
      const [dx, dscale, doffset, r4, r5] = b.executeMultipleOutputs(
        'FusedBatchNormGradV3',
        bnAttrs(b, (at as { epsilon: number }).epsilon, true),
        [dy, x, scale, r1, r2, r3],
        5,
      );
      tf.dispose([r4, r5]);
      return { x: () => dx, scale: () => dscale, offset: () => doffset };
    },
  });

  const proto = Object.getPrototypeOf(tf.layers.batchNormalization({})) as BatchNormLayer & { [ORIGINAL]?: BatchNormLayer['call'] };
  if (Object.prototype.hasOwnProperty.call(proto, ORIGINAL)) return;
  const original = proto.call;
  Object.defineProperty(proto, ORIGINAL, { value: original });
  proto.call = function call(this: BatchNormLayer, inputs: Tensor | Tensor[], kwargs: Record<string, unknown>): Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const usable =
      kwargs?.training === true &&
      (!Array.isArray(inputs) || inputs.length === 1) &&
      hasKernel(tf, BATCH_NORM_TRAINING) &&
      x instanceof tf.Tensor &&
      x.rank === 4 &&
      x.dtype === 'float32' &&
      (this.axis === -1 || this.axis === 3) &&
      this.center &&
      this.scale &&
      this.gamma != null &&
      this.beta != null;
    if (!usable) return original.call(this, inputs, kwargs);
    return tf.tidy(() => {
      const [y, mean, variance] = tf.engine().runKernel(BATCH_NORM_TRAINING, { x, scale: this.gamma!.read(), offset: this.beta!.read() }, {
        epsilon: this.epsilon,
      } as never) as Tensor[];
      // tfjs-layers' moving-average update, unchanged.
      const decay = 1 - this.momentum;
      for (const [v, value] of [
        [this.movingMean, mean],
        [this.movingVariance, variance],
      ] as const) {
        tf.tidy(() => {
          const orig = v.read();
          v.write(tf.sub(orig, tf.mul(tf.sub(orig, value), decay)));
        });
      }
      return y;
    });
  };
}
