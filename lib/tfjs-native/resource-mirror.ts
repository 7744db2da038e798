/**
 * TensorFlow resource variables that mirror tfjs variables, for the optimizers' ResourceApply*
 * kernels (adam.ts, momentum.ts): those update a variable in place through a handle, which tfjs's
 * own variables do not have. A mirror remembers which tfjs tensor data it holds, so it is
 * re-assigned only when its tfjs variable was changed elsewhere (a broadcast, setWeights, a
 * user's assign); after an update the new value is read back into the tfjs variable, at once for
 * the weights and, for optimizer state that only the optimizer reads, when someone looks
 * (`behind`, catchUp): a value read back shares its buffer with the handle, so TensorFlow copies
 * it at the next update, which state left behind in the handle does not cost.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, NativeBackend, OpAttr, TF } from './native-op';

type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;

let handleSeq = 0;

export interface Mirror {
  handle: Tensor;
  /** The tfjs tensor data the handle holds (what it was assigned or read back as). */
  dataId: object | undefined;
  /** The handle holds a newer value than its tfjs variable, not read back yet (catchUp). */
  behind?: boolean;
}

const dataIdOf = (t: Tensor) => (t as unknown as { dataId: object }).dataId;

function dtypeAttr(b: NativeBackend): OpAttr {
  return { name: 'dtype', type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_FLOAT };
}

/** A resource variable shaped like `like`, kept out of tfjs's scopes (dispose with destroyMirrors). */
export function newMirror(tf: TF, b: NativeBackend, like: Variable, prefix: string): Mirror {
  const a = attrs(b);
  const handle = tf.keep(
    b.executeSingleOutput(
      'VarHandleOp',
      [
        dtypeAttr(b),
        { name: 'shape', type: (b.binding as unknown as { TF_ATTR_SHAPE: number }).TF_ATTR_SHAPE, value: like.shape },
        a.str('container', ''),
        a.str('shared_name', `${prefix}_${process.pid}_${++handleSeq}`),
      ],
      [],
    ),
  );
  return { handle, dataId: undefined };
}

/**
 * Makes the handle hold `v`'s current value, unless it already does (or holds a newer one, and
 * `v` was not assigned since: an assignment from outside wins over state left behind).
 */
export function sync(b: NativeBackend, mirror: Mirror, v: Variable): void {
  if (mirror.dataId === dataIdOf(v)) return;
  b.executeMultipleOutputs('AssignVariableOp', [dtypeAttr(b)], [mirror.handle, v], 0);
  mirror.dataId = dataIdOf(v);
  mirror.behind = false;
}

/** Reads a handle left `behind` into its tfjs variable (before anyone else reads the variable). */
export function catchUp(b: NativeBackend, mirror: Mirror, v: Variable): void {
  if (!mirror.behind) return;
  if (!v.isDisposed && mirror.dataId === dataIdOf(v)) readBack(b, mirror, v);
  mirror.behind = false;
}

/** Reads the handle's value into `v` (shares the buffer; TensorFlow copies on the next write). */
export function readBack(b: NativeBackend, mirror: Mirror, v: Variable): void {
  const t = b.executeSingleOutput('ReadVariableOp', [dtypeAttr(b)], [mirror.handle]);
  v.assign(t);
  t.dispose();
  mirror.dataId = dataIdOf(v);
  mirror.behind = false;
}

export function destroyMirrors(b: NativeBackend, mirrors: Iterable<Mirror>): void {
  for (const m of mirrors) {
    b.executeMultipleOutputs('DestroyResourceOp', [attrs(b).bool('ignore_lookup_error', true)], [m.handle], 0);
    m.handle.dispose();
  }
}

/**
 * Runs `update` (an op updating the handle in place) and reads the result back into `v`. Since the
 * last read back, `v` and the handle share one buffer, and TensorFlow copies a buffer someone else
 * holds before it updates it; so `v` first lets go of it, holding `stand` (a tensor of its shape
 * and dtype, e.g. the gradient) for the moment. If the update fails, `v` gets the handle's value.
 */
export function updateInPlace(b: NativeBackend, mirror: Mirror, v: Variable, stand: Tensor, update: () => void): void {
  if (stand.dtype === v.dtype && stand.shape.length === v.shape.length && stand.shape.every((d, i) => d === v.shape[i])) v.assign(stand);
  try {
    update();
  } finally {
    readBack(b, mirror, v);
  }
}
