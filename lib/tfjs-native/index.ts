/**
 * tfjs-on-spark's native kernels for tfjs-node: TensorFlow's fused ops and gradients, called by
 * name through the 'tensorflow' backend, for whatever tfjs model runs in the process.
 *
 *   relu-grad       ReLU's gradient as ReluGrad                                  (relu.ts)
 *   fused-bias-act  conv2d / matMul + bias + relu as one op; ReluGrad, BiasAddGrad (bias-act.ts)
 *   softmax-xent    tf.losses.softmaxCrossEntropy through SoftmaxCrossEntropyWithLogits (softmax-xent.ts)
 *   adam            tf.train.adam's update as ResourceApplyAdam, one kernel per variable (adam.ts)
 *   momentum        tf.train.momentum's update (also Nesterov) as ResourceApplyMomentum (momentum.ts)
 *   batch-norm      layers' BatchNormalization in training as FusedBatchNormV3 / GradV3 (batch-norm.ts)
 *   max-pool        max pooling's gradient through oneDNN with a workspace (max-pool.ts)
 *   conv-grad       the convolution's filter gradient through oneDNN, as Python's graphs (conv-grad.ts)
 *
 * With them, model.fit / fitDataset / trainOnBatch run each step's forward and backward pass as
 * one TensorFlow graph (graph-fit.ts, traced-function.ts).
 *
 * Loading the package (`require('tfjs-on-spark')`) and every trainer call registerNativeKernels
 * once; TFOS_NATIVE_KERNELS=0 turns it off, or names the levers to use (comma-separated). The
 * kernels exist only for the 'tensorflow' backend (tfjs-node and tfjs-node-gpu): each op checks
 * the backend in use at call time and falls back to tfjs's own implementation elsewhere.
 */
import type { TF } from './native-op';
import { registerAdam } from './adam';
import { registerBatchNorm } from './batch-norm';
import { registerBiasAct } from './bias-act';
import { registerConvGrad } from './conv-grad';
import { registerGraphFit } from './graph-fit';
import { registerMaxPool } from './max-pool';
import { registerMomentum } from './momentum';
import { registerReluGrad } from './relu';
import { registerSoftmaxXent } from './softmax-xent';

export const LEVERS = ['relu-grad', 'fused-bias-act', 'softmax-xent', 'adam', 'batch-norm', 'max-pool', 'conv-grad', 'momentum'] as const;
export type Lever = (typeof LEVERS)[number];

const REGISTER: Record<Lever, (tf: TF) => void> = {
  'relu-grad': registerReluGrad,
  'fused-bias-act': registerBiasAct,
  'softmax-xent': registerSoftmaxXent,
  adam: registerAdam,
  'batch-norm': registerBatchNorm,
  'max-pool': registerMaxPool,
  'conv-grad': registerConvGrad,
  momentum: registerMomentum,
};

const DONE = Symbol.for('tfjs-on-spark.native-kernels');

export interface NativeKernelOptions {
  /** Levers to register (default: all, or those TFOS_NATIVE_KERNELS names). */
  only?: readonly string[];
}

/** Which levers TFOS_NATIVE_KERNELS asks for: all when unset or '1', none for '0'/'off'. */
export function leversFromEnv(value = process.env.TFOS_NATIVE_KERNELS): Lever[] {
  const v = value?.trim().toLowerCase();
  if (v === undefined || v === '' || v === '1' || v === 'on' || v === 'all') return [...LEVERS];
  if (v === '0' || v === 'off' || v === 'none') return [];
  return parseLevers(v.split(','));
}

function parseLevers(names: readonly string[]): Lever[] {
  return names.map((n) => {
    const name = n.trim();
    if (!(LEVERS as readonly string[]).includes(name))
      throw new Error(`unknown native kernel lever '${name}' (have: ${LEVERS.join(', ')})`);
    return name as Lever;
  });
}

/**
 * Registers the levers on `tf` (a tfjs-node module, or @tensorflow/tfjs: then nothing dispatches
 * to them until a 'tensorflow' backend is in use). Idempotent; returns the levers now active.
 */
export function registerNativeKernels(tf: TF, opts: NativeKernelOptions = {}): Lever[] {
  // model.fit's steps as one TensorFlow graph (graph-fit.ts; TFOS_GRAPH_STEP=0 turns it off at run time).
  registerGraphFit(tf);
  const holder = tf.engine() as unknown as { [DONE]?: Set<Lever> };
  const done = (holder[DONE] ??= new Set<Lever>());
  for (const lever of opts.only ? parseLevers(opts.only) : leversFromEnv()) {
    if (done.has(lever)) continue;
    REGISTER[lever](tf);
    done.add(lever);
  }
  return [...done];
}
