/**
 * The two networks of the CIFAR-10 example (`--model seed|fast`).
 *
 *  seed — the TensorFlow CIFAR-10 tutorial CNN, the network of the experiment this project
 *         reproduces: 24×24×3 crops → conv 5×5×64 → max-pool 3×3/2 → LRN → conv 5×5×64 → LRN →
 *         max-pool 3×3/2 → dense 384 → dense 192 → dense 10 logits; L2 weight decay 0.004 on the
 *         two hidden dense layers (tf.nn.l2_loss is ½·Σw², so the tfjs l2 factor is 0.002).
 *         Trained with Adam.
 *  fast — a residual net with batch norm sized for a few CPU cores (channels 32-64-128-256, two
 *         residual blocks, global max-pool), trained on 32×32 pad-and-crop images with SGD
 *         (Nesterov momentum), label smoothing and a one-cycle learning rate (train.ts).
 */
import type * as TF from '@tensorflow/tfjs';
import { localResponseNormalization } from '../../lib/layers/local-response-normalization';

export type ModelName = 'seed' | 'fast';
type Tfjs = typeof TF;

export interface ModelRecipe {
  name: ModelName;
  /** Side of the square images the net takes (crops of the 32×32 originals). */
  imageSize: number;
  /** Default learning rate (peak of the schedule). */
  lr: number;
  /** Label smoothing of the training loss. */
  labelSmoothing: number;
  /** Evaluate on the image and its mirror image (test-time augmentation). */
  flipTta: boolean;
  build(tf: Tfjs): TF.LayersModel;
  optimizer(tf: Tfjs, lr: number): TF.Optimizer;
}

export const SEED: ModelRecipe = {
  name: 'seed',
  imageSize: 24,
  lr: 1e-3,
  labelSmoothing: 0,
  flipTta: false,
  build(tf) {
    // The tutorial's initialisers: truncated normal, stddev 5e-2 for convs, 0.04 for hidden dense, 1/192 for logits.
    const tn = (stddev: number) => tf.initializers.truncatedNormal({ stddev });
    const lrn = () => localResponseNormalization({ depthRadius: 4, bias: 1, alpha: 0.001 / 9, beta: 0.75 });
    const model = tf.sequential({ name: 'cifar10_seed' });
    model.add(
      tf.layers.conv2d({
        inputShape: [24, 24, 3],
        filters: 64,
        kernelSize: 5,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: tn(5e-2),
        name: 'conv1',
      }),
    );
    model.add(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool1' }));
    model.add(lrn());
    model.add(
      tf.layers.conv2d({
        filters: 64,
        kernelSize: 5,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: tn(5e-2),
        biasInitializer: tf.initializers.constant({ value: 0.1 }),
        name: 'conv2',
      }),
    );
    model.add(lrn());
    model.add(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool2' }));
    model.add(tf.layers.flatten());
    const decay = () => tf.regularizers.l2({ l2: 0.002 });
    const bias = () => tf.initializers.constant({ value: 0.1 });
    model.add(
      tf.layers.dense({
        units: 384,
        activation: 'relu',
        kernelInitializer: tn(0.04),
        biasInitializer: bias(),
        kernelRegularizer: decay(),
        name: 'local3',
      }),
    );
    model.add(
      tf.layers.dense({
        units: 192,
        activation: 'relu',
        kernelInitializer: tn(0.04),
        biasInitializer: bias(),
        kernelRegularizer: decay(),
        name: 'local4',
      }),
    );
    // Logits: the loss applies the softmax.
    model.add(tf.layers.dense({ units: 10, kernelInitializer: tn(1 / 192), name: 'softmax_linear' }));
    return model;
  },
  optimizer(tf, lr) {
    return tf.train.adam(lr);
  },
};

export const FAST: ModelRecipe = {
  name: 'fast',
  imageSize: 32,
  lr: 0.1,
  labelSmoothing: 0.2,
  flipTta: true,
  build(tf) {
    const decay = () => tf.regularizers.l2({ l2: 5e-4 / 2 });
    const convBn = (x: TF.SymbolicTensor, filters: number, name: string): TF.SymbolicTensor => {
      const c = tf.layers
        .conv2d({ filters, kernelSize: 3, padding: 'same', useBias: false, kernelRegularizer: decay(), name: `${name}_conv` })
        .apply(x) as TF.SymbolicTensor;
      const b = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5, name: `${name}_bn` }).apply(c) as TF.SymbolicTensor;
      return tf.layers.reLU({ name: `${name}_relu` }).apply(b) as TF.SymbolicTensor;
    };
    const pool = (x: TF.SymbolicTensor, name: string) => tf.layers.maxPooling2d({ poolSize: 2, name }).apply(x) as TF.SymbolicTensor;
    const residual = (x: TF.SymbolicTensor, filters: number, name: string) =>
      tf.layers.add({ name: `${name}_add` }).apply([x, convBn(convBn(x, filters, `${name}_a`), filters, `${name}_b`)]) as TF.SymbolicTensor;

    const input = tf.input({ shape: [32, 32, 3], name: 'image' });
    let x = convBn(input, 32, 'prep');
    x = residual(pool(convBn(x, 64, 'layer1'), 'pool1'), 64, 'res1');
    x = pool(convBn(x, 128, 'layer2'), 'pool2');
    x = residual(pool(convBn(x, 256, 'layer3'), 'pool3'), 256, 'res3');
    x = tf.layers.globalMaxPooling2d({ name: 'pool4' }).apply(x) as TF.SymbolicTensor;
    const dense = tf.layers
      .dense({ units: 10, useBias: false, kernelRegularizer: decay(), name: 'logits_dense' })
      .apply(x) as TF.SymbolicTensor;
    // Logits scaled by 1/8: the max-pooled features are large, and unscaled logits start the
    // (label-smoothed) loss far above ln 10 and make the first high-learning-rate steps diverge.
    const logits = tf.layers.rescaling({ scale: 0.125, name: 'logits' }).apply(dense) as TF.SymbolicTensor;
    return tf.model({ inputs: input, outputs: logits, name: 'cifar10_fast' });
  },
  optimizer(tf, lr) {
    return tf.train.momentum(lr, 0.9, true);
  },
};

export function recipe(name: string): ModelRecipe {
  if (name === 'seed') return SEED;
  if (name === 'fast') return FAST;
  throw new Error(`--model must be seed or fast, got '${name}'`);
}
