/**
 * The two networks of the step benchmark are the CIFAR-10 example's (examples/cifar10/models.ts),
 * with the optimizer and loss the example trains them with; bench/step_tf.py builds the same in
 * Keras:
 *   seed — the TensorFlow tutorial CNN on 24×24×3 crops: conv5×5×64 → maxpool 3/2 → LRN →
 *          conv5×5×64 → LRN → maxpool 3/2 → dense 384 → dense 192 → dense 10 (1.07 M floats); Adam;
 *   fast — the example's residual net with batch norm on 32×32×3; SGD with Nesterov momentum,
 *          label smoothing 0.2.
 * Weight decay is left out on both sides (a custom training step adds no regularization losses).
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { FAST, ModelRecipe, SEED } from '../examples/cifar10/models';

type TF = typeof tfTypes;
export type NetName = 'seed' | 'fast';
export const NETS: NetName[] = ['seed', 'fast'];

export interface NetSpec {
  model: tfTypes.LayersModel;
  inputShape: [number, number, number];
  optimizer: tfTypes.Optimizer;
  labelSmoothing: number;
}

export function buildNet(tf: TF, name: NetName): NetSpec {
  const r: ModelRecipe = name === 'seed' ? SEED : FAST;
  return {
    model: r.build(tf),
    inputShape: [r.imageSize, r.imageSize, 3],
    optimizer: r.optimizer(tf, r.lr),
    labelSmoothing: r.labelSmoothing,
  };
}

export const NET_TITLES: Record<NetName, string> = {
  seed: 'seed CNN (24×24, LRN, Adam)',
  fast: 'example fast net (32×32, residual + batch norm, Nesterov SGD)',
};
