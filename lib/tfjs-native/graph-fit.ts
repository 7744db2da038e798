/**
 * Graph steps for model.fit, fitDataset and trainOnBatch. tfjs-layers builds a batch's step with
 * makeTrainFunction: a function of the batch's tensors (inputs, targets, sample weights) that runs
 * the model, the losses and the metrics and ends in optimizer.minimize. The patched
 * makeTrainFunction records that function (TracedFunction) with minimize computing the gradients
 * only, and hands them to the model's optimizer after the graph: the forward pass, losses, metrics
 * and backward pass run as one TensorFlow graph, the update as before (a DistributedOptimizer's
 * fit optimizer then stashes them, as it does for minimize).
 *
 * One recording per model, kept while the model's optimizer, losses, metrics and weights are the
 * same ones (fit builds a train function per call; trainOnBatch per batch); compile() replaces
 * them, and with them the recording. TFOS_GRAPH_STEP=0 leaves fit as tfjs has it.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { TF } from './native-op';
import { graphStepsEnabled, supportsGraphFunctions, TracedFunction } from './traced-function';

type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;

const PATCHED = Symbol.for('tfjs-on-spark.graph-fit');

interface TrainableModel {
  makeTrainFunction(): (data: Array<Tensor | null>) => Tensor[];
  optimizer_: tfTypes.Optimizer;
  lossFunctions: unknown[];
  metricsTensors: unknown[];
  collectedTrainableWeights: unknown[];
}

interface FitStep {
  traced: TracedFunction;
  /** What the recording was made with: another of any of them needs a new recording. */
  made: [tfTypes.Optimizer, unknown[], unknown[], unknown[]];
  /** Which entries of the train function's data were tensors (the rest null: no sample weights). */
  pattern: string;
  /** How many tensors the train function returns (loss, metrics); the gradients follow. */
  returned: number;
  variables: Variable[];
}

const steps = new WeakMap<object, FitStep>();

/** The recorded step of `model`'s fit, if any (to see whether it runs as a graph). */
export function fitGraphStep(model: object): TracedFunction | undefined {
  // A Sequential trains through the LayersModel it wraps.
  const inner = (model as { model?: object }).model;
  return (steps.get(model) ?? (inner ? steps.get(inner) : undefined))?.traced;
}

type Minimize = tfTypes.Optimizer['minimize'];

export function registerGraphFit(tf: TF): void {
  const ctor = (tf as unknown as { LayersModel?: { prototype: TrainableModel } }).LayersModel;
  if (!ctor) return;
  const proto = ctor.prototype as TrainableModel & { [PATCHED]?: boolean };
  if (Object.prototype.hasOwnProperty.call(proto, PATCHED)) return;
  Object.defineProperty(proto, PATCHED, { value: true });
  const original = proto.makeTrainFunction;

  proto.makeTrainFunction = function makeTrainFunction(this: TrainableModel) {
    const train = original.call(this);
    return (data: Array<Tensor | null>): Tensor[] => {
      if (!graphStepsEnabled() || tf.getBackend() !== 'tensorflow' || !supportsGraphFunctions(tf.backend())) return train(data as Tensor[]);
      const made: FitStep['made'] = [this.optimizer_, this.lossFunctions, this.metricsTensors, this.collectedTrainableWeights];
      // Absent sample weights are nulls in `data` (fit) or missing (trainOnBatch), which tfjs reads
      // alike; the recording takes the tensors, and another pattern of them is another recording.
      let end = data.length;
      while (end > 0 && data[end - 1] == null) end--;
      const present = data.slice(0, end).map((d) => d != null);
      const pattern = present.map((p) => (p ? '1' : '0')).join('');
      let step = steps.get(this);
      if (!step || step.pattern !== pattern || step.made.some((m, i) => m !== made[i])) {
        step?.traced.dispose();
        const refill = (ins: Tensor[]) => {
          let k = 0;
          return present.map((p) => (p ? ins[k++] : null)) as Tensor[];
        };
        step = {
          traced: new TracedFunction(tf, (ins) => gradientsOnly(this, train, refill(ins), step!)),
          made,
          pattern,
          returned: 0,
          variables: [],
        };
        steps.set(this, step);
      }
      const all = step.traced.call(data.filter((d): d is Tensor => d != null));
      const outs = all.slice(0, step.returned);
      const grads: tfTypes.NamedTensorMap = {};
      step.variables.forEach((v, i) => (grads[v.name] = all[step.returned + i]));
      this.optimizer_.applyGradients(grads);
      tf.dispose(Object.values(grads));
      return outs;
    };
  };

  /** Runs tfjs's train function with the optimizer's minimize computing the gradients only. */
  function gradientsOnly(model: TrainableModel, train: (data: Array<Tensor | null>) => Tensor[], data: Tensor[], step: FitStep): Tensor[] {
    const opt = model.optimizer_ as tfTypes.Optimizer & { minimize: Minimize };
    let taken: { grads: tfTypes.NamedTensorMap; variables: Variable[] } | undefined;
    const minimize: Minimize = (f, _returnCost, varList) => {
      const { value, grads } = tf.variableGrads(f, varList);
      taken = { grads, variables: varList ?? Object.keys(grads).map((n) => tf.engine().registeredVariables[n]) };
      return value;
    };
    const own = Object.prototype.hasOwnProperty.call(opt, 'minimize');
    const before = opt.minimize;
    Object.defineProperty(opt, 'minimize', { value: minimize, writable: true, configurable: true });
    let outs: Tensor[];
    try {
      outs = train(data);
    } finally {
      if (own) opt.minimize = before;
      else delete (opt as { minimize?: Minimize }).minimize;
    }
    if (!taken) throw new Error('model.fit: the train function did not call optimizer.minimize');
    const { grads } = taken;
    // As tfjs's minimize: a variable the loss does not reach gets no update.
    const variables = taken.variables.filter((v) => grads[v.name]);
    step.returned = outs.length;
    step.variables = variables;
    return [...outs, ...variables.map((v) => grads[v.name])];
  }
}
