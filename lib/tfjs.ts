/**
 * The tfjs this package runs on, for user code: `import { tf } from 'tfjs-on-spark'`. A training
 * module that takes tf from here shares the trainer's engine (backend, kernels, tensors) instead
 * of loading a second copy of tfjs. Loaded on first use, so a driver that never touches tensors
 * never loads TensorFlow.
 */
import type * as TfjsNode from '@tensorflow/tfjs-node';
import { tf as loadTf } from './node/distributed/tf';

export type Tfjs = typeof TfjsNode;

function lazyNamespace(load: () => object): Tfjs {
  const target = () => load() as Record<PropertyKey, unknown>;
  return new Proxy({} as Tfjs, {
    get: (_t, key) => target()[key],
    has: (_t, key) => key in target(),
    ownKeys: () => Reflect.ownKeys(target()),
    getOwnPropertyDescriptor: (_t, key) => {
      const d = Reflect.getOwnPropertyDescriptor(target(), key);
      return d && { ...d, configurable: true };
    },
  });
}

export const tf: Tfjs = lazyNamespace(loadTf);

/**
 * tfjs's types under the same name, so `tf.Tensor` and `tf.LayersModel` work in annotations as
 * with `import * as tf from '@tensorflow/tfjs-node'` (a const cannot carry them by itself).
 */
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace tf {
  export type Rank = TfjsNode.Rank;
  export type DataType = TfjsNode.DataType;
  export type TensorLike = TfjsNode.TensorLike;
  export type Tensor<R extends TfjsNode.Rank = TfjsNode.Rank> = TfjsNode.Tensor<R>;
  export type Scalar = TfjsNode.Scalar;
  export type Tensor1D = TfjsNode.Tensor1D;
  export type Tensor2D = TfjsNode.Tensor2D;
  export type Tensor3D = TfjsNode.Tensor3D;
  export type Tensor4D = TfjsNode.Tensor4D;
  export type Variable<R extends TfjsNode.Rank = TfjsNode.Rank> = TfjsNode.Variable<R>;
  export type NamedTensorMap = TfjsNode.NamedTensorMap;
  export type Optimizer = TfjsNode.Optimizer;
  export type LayersModel = TfjsNode.LayersModel;
  export type Sequential = TfjsNode.Sequential;
  export type SymbolicTensor = TfjsNode.SymbolicTensor;
  export type History = TfjsNode.History;
}
