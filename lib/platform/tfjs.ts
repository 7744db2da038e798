/**
 * The one TensorFlow.js loader. Prefers '@tensorflow/tfjs-node' (native TensorFlow kernels) when
 * its addon loads, else the pure-JavaScript '@tensorflow/tfjs' (cpu backend). TFOS_TFJS picks:
 *   (unset)  tfjs-node, else @tensorflow/tfjs;
 *   js       @tensorflow/tfjs;
 *   gpu      @tensorflow/tfjs-node-gpu: the GPU build `tfos setup --gpu` made (TFOS_TFJS_GPU_PACKAGE,
 *            else the one in TFOS_HOME), else an installed @tensorflow/tfjs-node-gpu; an error
 *            when there is none (no silent fall-back to the CPU build).
 * Nothing is loaded until first use, so processes that never touch tensors (the driver, the
 * collectives transport) never pay for it.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { findGpuBuild, GPU_PACKAGE } from './gpu-build';

export type TF = typeof tfTypes;
export type TfjsPackage = '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs';

let loaded: { tf: TF; package: TfjsPackage } | undefined;

/** What TFOS_TFJS asks for ('' when unset). */
export function tfjsChoice(env: NodeJS.ProcessEnv = process.env): '' | 'js' | 'gpu' {
  const choice = env.TFOS_TFJS?.trim() ?? '';
  if (choice !== '' && choice !== 'js' && choice !== 'gpu') {
    throw new Error(
      `TFOS_TFJS=${choice} is not understood: set TFOS_TFJS=js for the pure-JavaScript @tensorflow/tfjs, TFOS_TFJS=gpu for tfjs-node-gpu (tfos setup --gpu), or leave it unset (tfjs-node when its addon loads)`,
    );
  }
  return choice;
}

/**
 * The file `require` loads for TFOS_TFJS=gpu: the package folder of the GPU build, or the
 * resolvable @tensorflow/tfjs-node-gpu; throws naming where it looked.
 */
export function gpuPackageEntry(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.TFOS_TFJS_GPU_PACKAGE?.trim();
  const dir = given || findGpuBuild(env)?.packageDir;
  if (dir) return require.resolve(dir);
  try {
    return require.resolve(GPU_PACKAGE, { paths: [process.cwd(), __dirname] });
  } catch {
    throw new Error(
      `TFOS_TFJS=gpu: no GPU build of tfjs-node here: none provisioned in TFOS_HOME (run \`tfos setup --gpu\`) and ${GPU_PACKAGE} is not installed`,
    );
  }
}

/** Loads tfjs once per process and says which package it is. */
export function loadTfjs(env: NodeJS.ProcessEnv = process.env): { tf: TF; package: TfjsPackage } {
  const choice = tfjsChoice(env);
  if (loaded && choice === 'gpu' && loaded.package !== GPU_PACKAGE) {
    throw new Error(`TFOS_TFJS=gpu: this process loaded ${loaded.package} already; set TFOS_TFJS before it starts`);
  }
  if (loaded) return loaded;
  if (choice === 'gpu') {
    loaded = { tf: require(gpuPackageEntry(env)) as TF, package: GPU_PACKAGE };
    return loaded;
  }
  if (choice !== 'js') {
    try {
      loaded = { tf: require('@tensorflow/tfjs-node') as TF, package: '@tensorflow/tfjs-node' };
      return loaded;
    } catch {
      /* the native addon is not built here (`tfos setup` builds it): use the JS package */
    }
  }
  loaded = { tf: require('@tensorflow/tfjs') as TF, package: '@tensorflow/tfjs' };
  return loaded;
}

/** The loaded tfjs module. */
export function tfjs(): TF {
  return loadTfjs().tf;
}

/**
 * tfjs as a value to import (`import { tf } from 'tfjs-on-spark'`): the same module loadTfjs()
 * gives, loaded on first property access rather than when the package is imported.
 */
export const tf: TF = new Proxy({} as TF, {
  get: (_target, key) => Reflect.get(tfjs(), key) as unknown,
  has: (_target, key) => Reflect.has(tfjs(), key),
  ownKeys: () => Reflect.ownKeys(tfjs()),
  getOwnPropertyDescriptor: (_target, key) => {
    const real = tfjs();
    const d = Reflect.getOwnPropertyDescriptor(real, key);
    // Reported configurable: the proxy's own (empty) target cannot hold non-configurable keys.
    return d && { value: Reflect.get(real, key) as unknown, writable: false, enumerable: d.enumerable, configurable: true };
  },
});

/**
 * tfjs's types under the same name, so `tf.Tensor` and `tf.LayersModel` work in annotations as
 * with `import * as tf from '@tensorflow/tfjs'` (a const cannot carry them by itself).
 */
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace tf {
  export type Rank = tfTypes.Rank;
  export type DataType = tfTypes.DataType;
  export type TensorLike = tfTypes.TensorLike;
  export type Tensor<R extends tfTypes.Rank = tfTypes.Rank> = tfTypes.Tensor<R>;
  export type Scalar = tfTypes.Scalar;
  export type Tensor1D = tfTypes.Tensor1D;
  export type Tensor2D = tfTypes.Tensor2D;
  export type Tensor3D = tfTypes.Tensor3D;
  export type Tensor4D = tfTypes.Tensor4D;
  export type Variable<R extends tfTypes.Rank = tfTypes.Rank> = tfTypes.Variable<R>;
  export type NamedTensorMap = tfTypes.NamedTensorMap;
  export type Optimizer = tfTypes.Optimizer;
  export type LayersModel = tfTypes.LayersModel;
  export type Sequential = tfTypes.Sequential;
  export type SymbolicTensor = tfTypes.SymbolicTensor;
  export type History = tfTypes.History;
}
