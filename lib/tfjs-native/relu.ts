/**
 * ReLU's gradient as TensorFlow's one ReluGrad kernel. tfjs builds it as dy · step(x), and the
 * native backend's Step is IsNan + Greater + Fill + two Selects, plus a Cast and a Mul: seven
 * passes over every activation map per layer and step.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, hasKernel, registerNativeKernel, TF } from './native-op';

type Tensor = tfTypes.Tensor;
export const RELU_GRAD = 'TfosReluGrad';

/** dy where `features` > 0, else 0 (`features` may be ReLU's input or its output). */
export function reluGrad(tf: TF, dy: Tensor, features: Tensor): Tensor {
  if (hasKernel(tf, RELU_GRAD)) return tf.engine().runKernel(RELU_GRAD, { dy, features }) as Tensor;
  return tf.mul(dy, tf.cast(tf.step(features), 'float32'));
}

export function registerReluGrad(tf: TF): void {
  registerNativeKernel(tf, RELU_GRAD, (b, { dy, features }) =>
    b.executeSingleOutput('ReluGrad', [attrs(b).type('T', dy.dtype)], [dy, features]),
  );
  // Second order: ReluGrad is linear in dy with the same mask; no gradient flows to the mask.
  tf.registerGradient({
    kernelName: RELU_GRAD,
    inputsToSave: ['features'],
    gradFunc: (ddx, saved) => {
      const [features] = saved;
      return { dy: () => reluGrad(tf, ddx as Tensor, features), features: () => tf.zerosLike(features) };
    },
  });
  // From ReLU's output, as TensorFlow's own gradient: then the input has no other consumer, and a
  // graph's optimizer can fuse the op before into the ReLU (batch norm + ReLU as one kernel).
  tf.registerGradient({
    kernelName: 'Relu',
    outputsToSave: [true],
    gradFunc: (dy, saved) => {
      const [y] = saved;
      return { x: () => reluGrad(tf, dy as Tensor, y) };
    },
  });
}
