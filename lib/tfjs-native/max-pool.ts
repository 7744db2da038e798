/**
 * Max pooling's gradient through oneDNN with a workspace. TensorFlow's CPU MaxPoolGrad searches
 * every window again for its maximum; the oneDNN pair (_MklNativeMaxPool records where each
 * maximum was, _MklNativeMaxPoolGrad scatters the gradient there) is several times faster, and it
 * is what Python TensorFlow's graphs run on x86 with oneDNN on. tfjs saves no workspace, so the
 * gradient recomputes the pooling with one (as cheap as the plain forward) and then scatters.
 *
 * Only on the CPU build of the native backend, NHWC, 'same'/'valid' padding; the first failure
 * (a TensorFlow without oneDNN, e.g. not x86) switches back to tfjs's MaxPoolGrad for good. A step
 * recorded for a graph (traced-function.ts) takes tfjs's MaxPoolGrad too: in a graph, oneDNN's
 * layout pass pairs MaxPool with MaxPoolGrad and keeps the forward's workspace, so nothing is
 * pooled twice.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, hasKernel, isRecordingGraph, NativeBackend, registerNativeKernel, TF } from './native-op';

type Tensor = tfTypes.Tensor;
export const MAX_POOL_GRAD = 'TfosMaxPoolGradWorkspace';

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: unknown;
  dimRoundingMode?: string;
}

const pair = (v: number | [number, number]): [number, number] => (Array.isArray(v) ? v : [v, v]);
let oneDnnWorks: boolean | undefined;

export function registerMaxPool(tf: TF): void {
  registerNativeKernel(tf, MAX_POOL_GRAD, (b: NativeBackend, { dy, x }, at) => {
    const a = attrs(b);
    const [kh, kw] = pair(at.filterSize as PoolAttrs['filterSize']);
    const [sh, sw] = pair(at.strides as PoolAttrs['strides']);
    const common = [
      a.type('T', 'float32'),
      a.ints('ksize', [1, kh, kw, 1]),
      a.ints('strides', [1, sh, sw, 1]),
      a.str('padding', String(at.pad).toUpperCase()),
      a.str('data_format', 'NHWC'),
      a.bool('workspace_enabled', true),
      a.str('_kernel', 'MklNameChangeOp'),
    ];
    const [y, workspace] = b.executeMultipleOutputs('_MklNativeMaxPool', common, [x], 2);
    const dx = b.executeSingleOutput('_MklNativeMaxPoolGrad', common, [x, y, dy, workspace]);
    tf.dispose([y, workspace]);
    return dx;
  });

  const usable = (x: Tensor, at: PoolAttrs) =>
    oneDnnWorks !== false &&
    !isRecordingGraph() &&
    hasKernel(tf, MAX_POOL_GRAD) &&
    !(tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice &&
    x.rank === 4 &&
    x.dtype === 'float32' &&
    (at.pad === 'same' || at.pad === 'valid') &&
    at.dimRoundingMode == null;

  tf.registerGradient({
    kernelName: 'MaxPool',
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, a) => {
      const [x, y] = saved;
      const at = a as unknown as PoolAttrs;
      return {
        x: () => {
          if (usable(x, at)) {
            try {
              const dx = tf.engine().runKernel(MAX_POOL_GRAD, { dy: dy as Tensor, x }, at as never) as Tensor;
              oneDnnWorks = true;
              return dx;
            } catch (err) {
              if (oneDnnWorks) throw err; // worked before: a real error
              oneDnnWorks = false;
            }
          }
          // tfjs's own gradient.
          return tf.engine().runKernel('MaxPoolGrad', { dy: dy as Tensor, input: x, output: y }, {
            filterSize: at.filterSize,
            strides: at.strides,
            pad: at.pad,
          } as never) as Tensor;
        },
      };
    },
  });
}
