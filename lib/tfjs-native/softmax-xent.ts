/**
 * Softmax cross-entropy on logits as TensorFlow's one SoftmaxCrossEntropyWithLogits kernel, which
 * also yields the gradient (softmax − labels) in the same pass. tfjs builds the loss from
 * logSumExp, Sub, Mul, Neg and Sum, and its gradient from Exp, Sub and Mul for both inputs.
 * tf.losses.softmaxCrossEntropy keeps its signature, its label smoothing and its weighting /
 * reduction; only the per-example loss comes from here (other backends use tfjs's own).
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, hasKernel, registerNativeKernel, TF } from './native-op';

type Tensor = tfTypes.Tensor;
export const SOFTMAX_XENT = 'TfosSoftmaxCrossEntropyWithLogits';
const ORIGINAL = Symbol.for('tfjs-on-spark.original-softmaxCrossEntropy');

/** Per-example loss −Σ labels · log softmax(logits), over the last axis of [batch, classes]. */
export function softmaxCrossEntropyWithLogits(tf: TF, labels: Tensor, logits: Tensor): Tensor {
  const [loss] = tf.engine().runKernel(SOFTMAX_XENT, { logits, labels }) as Tensor[];
  return loss;
}

export function registerSoftmaxXent(tf: TF): void {
  registerNativeKernel(tf, SOFTMAX_XENT, (b, { logits, labels }) =>
    b.executeMultipleOutputs('SoftmaxCrossEntropyWithLogits', [attrs(b).type('T', logits.dtype)], [logits, labels], 2),
  );
  tf.registerGradient({
    kernelName: SOFTMAX_XENT,
    inputsToSave: ['logits'],
    outputsToSave: [false, true],
    gradFunc: (dys, saved) => {
      const [logits, backprop] = saved;
      const dy = tf.expandDims((dys as Tensor[])[0], -1);
      return {
        logits: () => tf.mul(dy, backprop),
        labels: () => tf.mul(dy, tf.neg(tf.logSoftmax(logits))),
      };
    },
  });

  const losses = tf.losses as TF['losses'] & { [ORIGINAL]?: TF['losses']['softmaxCrossEntropy'] };
  if (losses[ORIGINAL]) return;
  const original = losses.softmaxCrossEntropy;
  losses[ORIGINAL] = original;
  losses.softmaxCrossEntropy = function softmaxCrossEntropy(onehotLabels, logits, weights?, labelSmoothing = 0, reduction?) {
    const usable =
      hasKernel(tf, SOFTMAX_XENT) &&
      typeof labelSmoothing === 'number' &&
      labelSmoothing >= 0 &&
      onehotLabels instanceof tf.Tensor &&
      logits instanceof tf.Tensor &&
      logits.rank === 2 &&
      logits.dtype === 'float32' &&
      (onehotLabels.dtype === 'float32' || onehotLabels.dtype === 'int32') &&
      onehotLabels.shape[0] === logits.shape[0] &&
      onehotLabels.shape[1] === logits.shape[1];
    if (!usable) return original(onehotLabels, logits, weights, labelSmoothing, reduction);
    return tf.tidy(() => {
      let labels = onehotLabels.dtype === 'float32' ? onehotLabels : tf.cast(onehotLabels, 'float32');
      // tfjs's smoothing: towards 1/numClasses.
      if (labelSmoothing > 0) labels = tf.add(tf.mul(labels, 1 - labelSmoothing), labelSmoothing / logits.shape[1]!);
      return tf.losses.computeWeightedLoss(softmaxCrossEntropyWithLogits(tf, labels, logits), weights, reduction);
    }) as never;
  } as TF['losses']['softmaxCrossEntropy'];
}
