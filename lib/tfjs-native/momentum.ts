/**
 * tf.train.momentum's update (plain or Nesterov) as TensorFlow's ResourceApplyMomentum: one kernel
 * per variable instead of six element-wise ones. The accumulations stay where tfjs keeps them
 * (the optimizer's `accumulations`), mirrored as resource variables like Adam's state (adam.ts,
 * resource-mirror.ts; read back when someone reads them), so getWeights / setWeights, checkpoints
 * and the distributed optimizer see
 * an ordinary MomentumOptimizer. The learning rate and momentum are read at every step, so
 * schedules (setLearningRate, setMomentum) apply as with tfjs's own update.
 *
 * Numerics are tfjs's: accum = m·accum + g; var −= lr·accum, or with Nesterov
 * var −= lr·(g + m·accum), which is what ResourceApplyMomentum computes.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, isNativeBackend, NativeBackend, TF } from './native-op';
import { catchUp, destroyMirrors, Mirror, newMirror, sync, updateInPlace } from './resource-mirror';

type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;
type NamedTensor = { name: string; tensor: Tensor };

const PATCHED = Symbol.for('tfjs-on-spark.native-momentum');
const STATE = Symbol('tfjs-on-spark.native-momentum-state');

interface Slot {
  value: Mirror;
  accum: Mirror;
  /** tfjs's accumulation variable, which `accum` mirrors; read back only when someone looks (getWeights). */
  accumVar: Variable;
}

interface MomentumLike {
  applyGradients(g: tfTypes.NamedTensorMap | NamedTensor[]): void;
  getWeights(): Promise<NamedTensor[]>;
  setWeights(w: NamedTensor[]): Promise<void>;
  dispose(): void;
  learningRate: number;
  momentum: number;
  useNesterov: boolean;
  accumulations: Array<{ originalName: string; variable: Variable }>;
  incrementIterations(): void;
  [STATE]?: Map<string, Slot>;
}

function destroy(b: NativeBackend, slots: Map<string, Slot>): void {
  destroyMirrors(
    b,
    [...slots.values()].flatMap((s) => [s.value, s.accum]),
  );
  slots.clear();
}

export function registerMomentum(tf: TF): void {
  const ctor = (tf as unknown as { MomentumOptimizer: { prototype: MomentumLike } }).MomentumOptimizer;
  const proto = ctor.prototype as MomentumLike & { [PATCHED]?: boolean };
  if (Object.prototype.hasOwnProperty.call(proto, PATCHED)) return;
  Object.defineProperty(proto, PATCHED, { value: true });
  const originalApply = proto.applyGradients;
  const originalGetWeights = proto.getWeights;
  const originalSetWeights = proto.setWeights;
  const originalDispose = proto.dispose;

  proto.applyGradients = function applyGradients(this: MomentumLike, variableGradients: tfTypes.NamedTensorMap | NamedTensor[]) {
    const b = tf.backend();
    if (tf.getBackend() !== 'tensorflow' || !isNativeBackend(b)) return originalApply.call(this, variableGradients);
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    const slots = (this[STATE] ??= new Map());
    const a = attrs(b);
    tf.tidy(() => {
      const lr = tf.scalar(this.learningRate);
      const momentum = tf.scalar(this.momentum);
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name];
        // By position, as tfjs's own MomentumOptimizer keeps them.
        this.accumulations[i] ??= { originalName: `${name}/momentum`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        const gradient = Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name];
        if (gradient == null) return;
        const accum = this.accumulations[i].variable;
        let slot = slots.get(name);
        if (!slot)
          slots.set(
            name,
            (slot = { value: newMirror(tf, b, value, 'tfos_momentum'), accum: newMirror(tf, b, accum, 'tfos_momentum'), accumVar: accum }),
          );
        slot.accumVar = accum;
        sync(b, slot.value, value);
        sync(b, slot.accum, accum);
        const g = gradient.dtype === 'float32' ? gradient : tf.cast(gradient, 'float32');
        updateInPlace(b, slot.value, value, g, () =>
          b.executeMultipleOutputs(
            'ResourceApplyMomentum',
            [a.type('T', 'float32'), a.bool('use_locking', false), a.bool('use_nesterov', this.useNesterov)],
            [slot.value.handle, slot.accum.handle, lr, g, momentum],
            0,
          ),
        );
        // The accumulation stays in its handle until someone reads it (getWeights).
        slot.accum.behind = true;
      });
    });
    this.incrementIterations();
  } as MomentumLike['applyGradients'];

  proto.getWeights = async function getWeights(this: MomentumLike) {
    const b = tf.backend();
    const slots = this[STATE];
    if (slots && isNativeBackend(b)) for (const s of slots.values()) catchUp(b, s.accum, s.accumVar);
    return originalGetWeights.call(this);
  };

  // New state replaces what the handles hold: nothing left behind is read back any more.
  proto.setWeights = async function setWeights(this: MomentumLike, w: NamedTensor[]) {
    for (const s of this[STATE]?.values() ?? []) s.accum.behind = false;
    return originalSetWeights.call(this, w);
  };

  proto.dispose = function dispose(this: MomentumLike) {
    const slots = this[STATE];
    const b = tf.backend();
    if (slots && isNativeBackend(b)) destroy(b, slots);
    originalDispose.call(this);
  };
}
