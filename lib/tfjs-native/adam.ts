/**
 * tf.train.adam's update as TensorFlow's ResourceApplyAdam: one kernel per variable instead of
 * about fourteen element-wise ones (plus their scalars). The optimizer's state stays where tfjs
 * keeps it (its m / v variables, accBeta1 / accBeta2, iterations), so getWeights / setWeights,
 * checkpoints and the distributed optimizer see an ordinary AdamOptimizer. Each variable gets
 * three resource handles (value, m, v) that mirror those tensors (resource-mirror.ts): the weights
 * are updated in place and read back after every update, the moments when someone reads them
 * (getWeights), and a handle is re-assigned only when its tfjs variable was changed elsewhere (a
 * broadcast, setWeights, a user's assign).
 *
 * Numerics: ResourceApplyAdam computes var −= lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + ε̂); with
 * ε̂ = ε·√(1−β₂ᵗ) that is exactly tfjs's var −= lr · m̂ / (√v̂ + ε).
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { attrs, isNativeBackend, NativeBackend, TF } from './native-op';
import { catchUp, destroyMirrors, Mirror, newMirror, sync, updateInPlace } from './resource-mirror';

type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;
type NamedTensor = { name: string; tensor: Tensor };

const PATCHED = Symbol.for('tfjs-on-spark.native-adam');
const STATE = Symbol('tfjs-on-spark.native-adam-state');

interface Slot {
  value: Mirror;
  m: Mirror;
  v: Mirror;
  /** tfjs's moment variables m and v mirror; read back only when someone looks (getWeights). */
  moments: [Variable, Variable];
}

interface AdamLike {
  applyGradients(g: tfTypes.NamedTensorMap | NamedTensor[]): void;
  getWeights(): Promise<NamedTensor[]>;
  setWeights(w: NamedTensor[]): Promise<void>;
  dispose(): void;
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: Variable;
  accBeta2: Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: Variable }>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: Variable }>;
  incrementIterations(): void;
  [STATE]?: { slots: Map<string, Slot>; constants: Tensor[]; values: number[] };
}

function destroy(b: NativeBackend, slots: Map<string, Slot>): void {
  destroyMirrors(
    b,
    [...slots.values()].flatMap((s) => [s.value, s.m, s.v]),
  );
  slots.clear();
}

export function registerAdam(tf: TF): void {
  const proto = (tf as unknown as { AdamOptimizer: { prototype: AdamLike } }).AdamOptimizer.prototype as AdamLike & { [PATCHED]?: boolean };
  if (Object.prototype.hasOwnProperty.call(proto, PATCHED)) return;
  Object.defineProperty(proto, PATCHED, { value: true });
  const originalApply = proto.applyGradients;
  const originalGetWeights = proto.getWeights;
  const originalSetWeights = proto.setWeights;
  const originalDispose = proto.dispose;

  proto.applyGradients = function applyGradients(this: AdamLike, variableGradients: tfTypes.NamedTensorMap | NamedTensor[]) {
    const b = tf.backend();
    if (tf.getBackend() !== 'tensorflow' || !isNativeBackend(b)) return originalApply.call(this, variableGradients);
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    const state = (this[STATE] ??= { slots: new Map(), constants: [], values: [] });
    // Made again when the learning rate (or a beta) was changed, as tfjs's own Adam reads them at every step.
    const values = [this.learningRate, this.beta1, this.beta2];
    if (!state.constants.length || values.some((v, i) => v !== state.values[i])) {
      tf.dispose(state.constants);
      state.constants = values.map((c) => tf.keep(tf.scalar(c)));
      state.values = values;
    }
    const [lr, beta1, beta2] = state.constants;
    const a = attrs(b);
    tf.tidy(() => {
      const accBeta1 = this.accBeta1.dataSync()[0];
      const accBeta2 = this.accBeta2.dataSync()[0];
      const epsHat = tf.scalar(this.epsilon * Math.sqrt(1 - accBeta2));
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name];
        // The moments live where tfjs keeps them (by position, as tfjs's own Adam does).
        this.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        this.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        const gradient = Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name];
        if (gradient == null) return;
        const m = this.accumulatedFirstMoment[i].variable;
        const v = this.accumulatedSecondMoment[i].variable;
        let slot = state.slots.get(name);
        if (!slot)
          state.slots.set(
            name,
            (slot = {
              value: newMirror(tf, b, value, 'tfos_adam'),
              m: newMirror(tf, b, m, 'tfos_adam'),
              v: newMirror(tf, b, v, 'tfos_adam'),
              moments: [m, v] as [Variable, Variable],
            }),
          );
        slot.moments = [m, v];
        sync(b, slot.value, value);
        sync(b, slot.m, m);
        sync(b, slot.v, v);
        const g = gradient.dtype === 'float32' ? gradient : tf.cast(gradient, 'float32');
        updateInPlace(b, slot.value, value, g, () =>
          b.executeMultipleOutputs(
            'ResourceApplyAdam',
            [a.type('T', 'float32'), a.bool('use_locking', false), a.bool('use_nesterov', false)],
            [slot.value.handle, slot.m.handle, slot.v.handle, this.accBeta1, this.accBeta2, lr, beta1, beta2, epsHat, g],
            0,
          ),
        );
        // The moments stay in their handles until someone reads them (getWeights).
        slot.m.behind = true;
        slot.v.behind = true;
      });
      this.accBeta1.assign(tf.scalar(accBeta1 * this.beta1));
      this.accBeta2.assign(tf.scalar(accBeta2 * this.beta2));
    });
    this.incrementIterations();
  } as AdamLike['applyGradients'];

  proto.getWeights = async function getWeights(this: AdamLike) {
    const b = tf.backend();
    const slots = this[STATE]?.slots;
    if (slots && isNativeBackend(b))
      for (const s of slots.values()) {
        catchUp(b, s.m, s.moments[0]);
        catchUp(b, s.v, s.moments[1]);
      }
    return originalGetWeights.call(this);
  };

  // New state replaces what the handles hold: nothing left behind is read back any more.
  proto.setWeights = async function setWeights(this: AdamLike, w: NamedTensor[]) {
    for (const s of this[STATE]?.slots.values() ?? []) s.m.behind = s.v.behind = false;
    return originalSetWeights.call(this, w);
  };

  proto.dispose = function dispose(this: AdamLike) {
    const state = this[STATE];
    const b = tf.backend();
    if (state && isNativeBackend(b)) {
      destroy(b, state.slots);
      tf.dispose(state.constants);
      state.constants = [];
    }
    originalDispose.call(this);
  };
}
