/**
 * Running a TensorFlow op by name on tfjs-node's 'tensorflow' backend (CPU or GPU build alike).
 * The backend's binding executes any op of the TensorFlow C library eagerly; this module wraps
 * that in typed attribute helpers, so the kernels beside it read like the ops they call.
 */
import type * as tfTypes from '@tensorflow/tfjs';

export type TF = typeof tfTypes;
type Tensor = tfTypes.Tensor;

/** The backend name both tfjs-node and tfjs-node-gpu register. */
export const NATIVE_BACKEND = 'tensorflow';

interface Binding {
  TF_FLOAT: number;
  TF_INT32: number;
  TF_BOOL: number;
  TF_ATTR_STRING: number;
  TF_ATTR_INT: number;
  TF_ATTR_FLOAT: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_TYPE: number;
}

export interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}

/** The part of tfjs-node's NodeJSKernelBackend the kernels use. */
export interface NativeBackend {
  binding: Binding;
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: Tensor[]): Tensor;
  executeMultipleOutputs(name: string, attrs: OpAttr[], inputs: Tensor[], numOutputs: number): Tensor[];
}

export function isNativeBackend(b: unknown): b is NativeBackend {
  const nb = b as Partial<NativeBackend> | undefined;
  return !!nb && typeof nb.executeSingleOutput === 'function' && typeof nb.executeMultipleOutputs === 'function' && !!nb.binding;
}

/** Attribute builders bound to one backend's binding constants. */
export function attrs(b: NativeBackend) {
  const B = b.binding;
  const dtypeCode = (dtype: string): number => {
    if (dtype === 'float32') return B.TF_FLOAT;
    if (dtype === 'int32') return B.TF_INT32;
    if (dtype === 'bool') return B.TF_BOOL;
    throw new TypeError(`tfjs-on-spark native kernels: unsupported dtype ${dtype}`);
  };
  return {
    type: (name: string, dtype: string): OpAttr => ({ name, type: B.TF_ATTR_TYPE, value: dtypeCode(dtype) }),
    str: (name: string, value: string): OpAttr => ({ name, type: B.TF_ATTR_STRING, value }),
    /** list(string) and list(type): only the patched binding sets them (patches/tfjs-node-binding.patch). */
    strs: (name: string, value: string[]): OpAttr => ({ name, type: B.TF_ATTR_STRING, value }),
    types: (name: string, dtypes: string[]): OpAttr => ({ name, type: B.TF_ATTR_TYPE, value: dtypes.map(dtypeCode) }),
    bool: (name: string, value: boolean): OpAttr => ({ name, type: B.TF_ATTR_BOOL, value }),
    int: (name: string, value: number): OpAttr => ({ name, type: B.TF_ATTR_INT, value }),
    ints: (name: string, value: number[]): OpAttr => ({ name, type: B.TF_ATTR_INT, value }),
    float: (name: string, value: number): OpAttr => ({ name, type: B.TF_ATTR_FLOAT, value }),
  };
}

let recordingGraph = false;

/**
 * Whether the ops running now are being recorded for a graph (traced-function.ts). A kernel may
 * then choose the form TensorFlow's graph optimizer rewrites best, where eagerly another is faster.
 */
export function isRecordingGraph(): boolean {
  return recordingGraph;
}

export function setRecordingGraph(on: boolean): void {
  recordingGraph = on;
}

/** Is `kernelName` registered for the backend in use right now (so an op may dispatch to it)? */
export function hasKernel(tf: TF, kernelName: string): boolean {
  return !!tf.getKernel(kernelName, tf.getBackend());
}

/** Registers a kernel for the native backend unless one of that name is there already. */
export function registerNativeKernel(
  tf: TF,
  kernelName: string,
  kernelFunc: (b: NativeBackend, inputs: Record<string, Tensor>, attrs: Record<string, unknown>) => Tensor | Tensor[],
): void {
  if (tf.getKernel(kernelName, NATIVE_BACKEND)) return;
  tf.registerKernel({
    kernelName,
    backendName: NATIVE_BACKEND,
    kernelFunc: ({ inputs, backend, attrs: a }) => {
      if (!isNativeBackend(backend)) throw new Error(`${kernelName}: the '${NATIVE_BACKEND}' backend is not tfjs-node's`);
      return kernelFunc(backend, inputs as unknown as Record<string, Tensor>, (a ?? {}) as Record<string, unknown>) as never;
    },
  });
}
