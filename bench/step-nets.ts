/**
 * The two networks of the step benchmark, in tfjs (bench/step_tf.py builds the same in Keras):
 *   seed    — the TensorFlow CIFAR-10 tutorial CNN on 24×24×3 crops: conv5×5×64 → maxpool 3/2 →
 *             LRN → conv5×5×64 → LRN → maxpool 3/2 → dense 384 → dense 192 → dense 10 (1.07 M floats);
 *   example — examples/cifar10/model.js, the example's current VGG-style net on 32×32×3.
 * The bench keeps its own copy of the seed net (with a small LRN layer) until the example has one.
 */
import * as path from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';

type TF = typeof tfTypes;
export type NetName = 'seed' | 'example';

export interface NetSpec {
  model: tfTypes.LayersModel;
  inputShape: [number, number, number];
}

/** The tutorial's LRN: depth_radius 4, bias 1, alpha 0.001/9, beta 0.75. */
function lrnLayer(tf: TF): tfTypes.layers.Layer {
  class LRN extends tf.layers.Layer {
    static readonly className = 'BenchLRN';
    override call(inputs: tfTypes.Tensor | tfTypes.Tensor[]): tfTypes.Tensor {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tfTypes.Tensor4D;
      return tf.localResponseNormalization(x, 4, 1, 0.001 / 9, 0.75);
    }
    override getClassName(): string {
      return LRN.className;
    }
  }
  return new LRN({});
}

export function buildNet(tf: TF, name: NetName): NetSpec {
  if (name === 'example') {
    // The example's model module, exactly as `npm start` trains it.
    const { buildModel } = require(path.resolve(__dirname, '../../examples/cifar10/model.js')) as { buildModel: (t: TF) => tfTypes.LayersModel };
    return { model: buildModel(tf), inputShape: [32, 32, 3] };
  }
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [24, 24, 3], filters: 64, kernelSize: 5, padding: 'same', activation: 'relu' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }));
  m.add(lrnLayer(tf));
  m.add(tf.layers.conv2d({ filters: 64, kernelSize: 5, padding: 'same', activation: 'relu' }));
  m.add(lrnLayer(tf));
  m.add(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 384, activation: 'relu' }));
  m.add(tf.layers.dense({ units: 192, activation: 'relu' }));
  m.add(tf.layers.dense({ units: 10 }));
  return { model: m, inputShape: [24, 24, 3] };
}
