/**
 * A tfjs function of tensors run as one TensorFlow graph. The first calls run eagerly while the
 * binding records every op they execute; when two recordings agree (same ops, attributes,
 * constants, variables), the recording becomes a TensorFlow function (graph-function.ts) and later
 * calls run that in a single op call. TensorFlow then optimizes the whole graph and runs its
 * independent ops side by side, which per-op eager dispatch cannot.
 *
 * What the function may do: compute from its input tensors, tfjs variables (read when called) and
 * constants, and assign variables (the new values are written back after each call). Values it
 * takes from JavaScript (tf.scalar(rate)) are constants of the graph: one that changes after the
 * first calls is seen at the next recheck (every `recheckEvery` calls one runs eagerly and is
 * recorded again), which ends the graph. What makes it stay eager, with the reason kept in
 * `eagerReason`: reading a tensor's values inside the function (its ops could then depend on
 * them), ops the graph cannot hold, or recordings that differ. Inputs of another shape or dtype
 * than recorded run eagerly, call by call.
 *
 * Needs the patched binding (patches/tfjs-node-binding.patch: addFunctionDef, getAllOpList).
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { functionDef, Program, RecordedOp, Ref, TensorSpec } from './graph-function';
import { attrs, setRecordingGraph, type NativeBackend, type OpAttr, type TF } from './native-op';
import { OpRegistry } from './op-defs';

type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;

interface TensorInfo {
  id: number;
  shape: number[];
  dtype: number;
}

/** tfjs-node's binding, as far as recording uses it. */
interface RecordingBinding {
  executeOp(name: string, attrs: OpAttr[], inputIds: number[], numOutputs: number): TensorInfo[];
  createTensor(shape: number[], dtype: number, values: ArrayLike<number> | Uint8Array): number;
  tensorDataSync(id: number): ArrayBufferView;
  deleteTensor(id: number): void;
  addFunctionDef?(def: Uint8Array): void;
  removeFunction?(name: string): void;
  getAllOpList?(): Uint8Array;
}

interface BackendInternals extends NativeBackend {
  binding: NativeBackend['binding'] & RecordingBinding;
  tensorMap: { get(dataId: object): { id: number; shape: number[]; dtype: string } | undefined };
  getInputTensorIds(tensors: Tensor[]): number[];
}

/** Where a function argument's value comes from at call time. */
type ArgSource = { input: number } | { variable: Variable };

interface Recording {
  program: Program;
  sources: ArgSource[];
  /** Variables the function assigns, with the result index holding each one's new value. */
  writes: Array<{ variable: Variable; result: number }>;
  /** How many results the function itself returned (the writes follow them). */
  returned: number;
  /** Everything that must match between two recordings for the graph to be trusted. */
  key: string;
}

/** tfjs's numeric dtypes as TensorFlow's (TF_FLOAT, TF_INT32, TF_BOOL): what an input or constant may be. */
const DTYPE_CODES: Record<string, number> = { float32: 1, int32: 3, bool: 10 };
const CONSTANT_DTYPES = Object.values(DTYPE_CODES);
let functionSeq = 0;
let registry: OpRegistry | undefined;

/** Whether this tfjs-node's binding can hold graph functions (the patched addon). */
export function supportsGraphFunctions(b: unknown): boolean {
  const binding = (b as Partial<BackendInternals> | undefined)?.binding as Partial<RecordingBinding> | undefined;
  return typeof binding?.addFunctionDef === 'function' && typeof binding.getAllOpList === 'function';
}

const dataIdOf = (t: Tensor) => (t as unknown as { dataId: object }).dataId;

function bytesOf(values: ArrayLike<number> | Uint8Array | ArrayBufferView, dtype: number): Uint8Array {
  const view = ArrayBuffer.isView(values)
    ? values
    : dtype === 1
      ? Float32Array.from(values as ArrayLike<number>)
      : dtype === 10
        ? Uint8Array.from(values as ArrayLike<number>)
        : Int32Array.from(values as ArrayLike<number>);
  return new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

export class TracedFunction {
  /** Why calls run eagerly for good, once that is decided. */
  eagerReason: string | undefined;
  private recordings: Array<Recording | { refusal: string }> = [];
  private compiled: { name: string; rec: Recording; attrs: OpAttr[] } | undefined;
  private readonly maxRecordings = 4;
  private callsSinceCheck = 0;

  /**
   * `recheckEvery`: every so many graph calls, one runs eagerly and is recorded again; a recording
   * that differs from the graph's ends the graph (default 100).
   */
  constructor(
    private readonly tf: TF,
    private readonly fn: (inputs: Tensor[]) => Tensor[],
    private readonly log: (message: string) => void = () => {},
    private readonly recheckEvery = 100,
  ) {}

  get isCompiled(): boolean {
    return this.compiled !== undefined;
  }

  call(inputs: Tensor[]): Tensor[] {
    const b = this.tf.backend() as unknown as BackendInternals;
    if (this.eagerReason !== undefined || this.tf.getBackend() !== 'tensorflow' || !supportsGraphFunctions(b)) return this.fn(inputs);
    if (this.compiled) {
      const { rec } = this.compiled;
      if (!this.fits(rec, inputs)) return this.fn(inputs);
      if (++this.callsSinceCheck < this.recheckEvery) return this.runCompiled(b, this.compiled, inputs);
      // Now and then the call runs eagerly once more: if what it records changed (a value the
      // function takes from JavaScript, such as a schedule), the graph is dropped for good.
      this.callsSinceCheck = 0;
      const again = this.record(b, inputs);
      if (!again.rec || again.rec.key !== rec.key) {
        this.dispose();
        this.stayEager(
          again.refusal ??
            `a recording after ${this.recheckEvery} graph calls differed from the graph's (a value taken from JavaScript changed)`,
        );
      }
      return again.outputs;
    }
    const { outputs, rec, refusal } = this.record(b, inputs);
    // A recording that read values is not used (the ops may depend on them); one-time work, such
    // as a kernel's first-use probe, reads only once, so a later recording can still be used.
    const prev = this.recordings[this.recordings.length - 1];
    this.recordings.push(rec ?? { refusal: refusal! });
    if (rec && prev && 'key' in prev && prev.key === rec.key) this.compile(b, rec);
    else if (this.recordings.length >= this.maxRecordings) {
      const last = refusal ?? this.recordings.map((r) => ('refusal' in r ? r.refusal : '')).find((r) => r);
      this.stayEager(last ? `${last} (in ${this.maxRecordings} calls)` : `${this.maxRecordings} recordings differed from each other`);
    }
    return outputs;
  }

  dispose(): void {
    if (!this.compiled) return;
    const b = this.tf.backend() as unknown as BackendInternals;
    b.binding.removeFunction?.(this.compiled.name);
    this.compiled = undefined;
  }

  private stayEager(reason: string): void {
    this.eagerReason = reason;
    this.recordings = [];
    this.log(`running eagerly: ${reason}`);
  }

  /** Inputs of the recorded shapes and dtypes, variables still there: the graph stands for this call. */
  private fits(rec: Recording, inputs: Tensor[]): boolean {
    return rec.sources.every((s, i) => {
      const t = 'input' in s ? inputs[s.input] : s.variable;
      const want = rec.program.args[i];
      return (
        t !== undefined &&
        !t.isDisposed &&
        DTYPE_CODES[t.dtype] === want.dtype &&
        t.shape.length === want.shape.length &&
        t.shape.every((d, k) => d === want.shape[k])
      );
    });
  }

  private compile(b: BackendInternals, rec: Recording): void {
    const name = `tfos_traced_${process.pid}_${++functionSeq}`;
    try {
      registry ??= new OpRegistry(b.binding.getAllOpList!());
      b.binding.addFunctionDef!(functionDef(name, rec.program, registry));
    } catch (err) {
      this.stayEager(`the recording could not become a graph: ${(err as Error).message}`);
      return;
    }
    // A call carrying a config_proto attribute (even an empty one) is optimized by Grappler when
    // TensorFlow instantiates it, as Python's tf.function calls are; without it only the graph
    // passes run (oneDNN's layout pass, but no remapper: batch norm and ReLU stay apart).
    const a = attrs(b);
    this.compiled = { name, rec, attrs: [a.str('executor_type', ''), a.str('config_proto', '')] };
    this.recordings = [];
    this.log(`running as one TensorFlow graph (${rec.program.ops.length} ops, ${rec.program.args.length} inputs)`);
  }

  private runCompiled(
    b: BackendInternals,
    { name, rec, attrs: callAttrs }: NonNullable<TracedFunction['compiled']>,
    inputs: Tensor[],
  ): Tensor[] {
    const args = rec.sources.map((s) => ('input' in s ? inputs[s.input] : (s.variable as Tensor)));
    const results = b.executeMultipleOutputs(name, callAttrs, args, rec.program.results.length);
    for (const w of rec.writes) {
      w.variable.assign(results[w.result]);
      results[w.result].dispose();
    }
    return results.slice(0, rec.returned);
  }

  /** Runs fn eagerly, recording the ops the binding executes. */
  private record(b: BackendInternals, inputs: Tensor[]): { outputs: Tensor[]; rec?: Recording; refusal?: string } {
    const binding = b.binding;
    const variables = Object.values(this.tf.engine().registeredVariables) as Variable[];
    // Give every input and variable its binding id now, so none is created mid-recording.
    b.getInputTensorIds([...inputs, ...variables]);
    const idOf = (t: Tensor) => b.tensorMap.get(dataIdOf(t))?.id ?? -1;
    const before = new Map<number, { source: ArgSource; tensor: Tensor }>();
    variables.forEach((v) => before.set(idOf(v), { source: { variable: v }, tensor: v }));
    inputs.forEach((t, i) => before.set(idOf(t), { source: { input: i }, tensor: t }));
    const startIds = new Map(variables.map((v) => [v, idOf(v)] as const));

    const program: Program = { args: [], constants: [], ops: [], results: [] };
    const sources: ArgSource[] = [];
    const refs = new Map<number, Ref>();
    const created = new Map<number, { shape: number[]; dtype: number; values: ArrayLike<number> | Uint8Array }>();
    let refusal: string | undefined;
    const keyParts: string[] = [];

    const refFor = (id: number, op: string): Ref => {
      const known = refs.get(id);
      if (known) return known;
      let ref: Ref;
      const made = created.get(id);
      const given = before.get(id);
      if (made && !CONSTANT_DTYPES.includes(made.dtype)) {
        refusal ??= `${op} reads a tensor of dtype ${made.dtype} made from JavaScript values`;
        ref = { constant: -1 };
      } else if (made) {
        program.constants.push({ dtype: made.dtype, shape: made.shape, bytes: bytesOf(made.values, made.dtype) });
        ref = { constant: program.constants.length - 1 };
      } else if (given && given.tensor.dtype in DTYPE_CODES) {
        program.args.push({ dtype: DTYPE_CODES[given.tensor.dtype], shape: [...given.tensor.shape] });
        sources.push(given.source);
        ref = { arg: program.args.length - 1 };
      } else if (given) {
        refusal ??= `${op} reads an input or variable of dtype ${given.tensor.dtype}`;
        ref = { arg: -1 };
      } else {
        // A tensor made before the call that is neither an input nor a variable: a constant.
        const info = binding.executeOp('Identity', [], [id], 1)[0];
        const values = binding.tensorDataSync(info.id);
        binding.deleteTensor(info.id);
        if (!CONSTANT_DTYPES.includes(info.dtype)) {
          refusal ??= `${op} reads a tensor of dtype ${info.dtype} made before the call that is no input or variable`;
          ref = { constant: -1 };
        } else {
          program.constants.push({ dtype: info.dtype, shape: info.shape, bytes: bytesOf(values, info.dtype) });
          ref = { constant: program.constants.length - 1 };
        }
      }
      refs.set(id, ref);
      return ref;
    };

    // The binding's properties are read-only; the recorder defines its own over them.
    const recorder = Object.create(binding) as RecordingBinding;
    const override = <K extends keyof RecordingBinding>(key: K, value: RecordingBinding[K]) =>
      Object.defineProperty(recorder, key, { value, writable: true, configurable: true });
    override('executeOp', (name, attrs, inputIds, numOutputs) => {
      const inputsRefs = inputIds.map((id) => refFor(id, name));
      const out = binding.executeOp(name, attrs, inputIds, numOutputs);
      const rec: RecordedOp = {
        op: name,
        attrs: attrs.map((a) => ({ ...a })),
        inputs: inputsRefs,
        outputs: out.map((o): TensorSpec => ({ dtype: o.dtype, shape: o.shape })),
      };
      program.ops.push(rec);
      out.forEach((o, k) => refs.set(o.id, { op: program.ops.length - 1, output: k }));
      return out;
    });
    override('createTensor', (shape, dtype, values) => {
      const id = binding.createTensor(shape, dtype, values);
      created.set(id, { shape: [...shape], dtype, values: ArrayBuffer.isView(values) ? values.slice() : Array.from(values) });
      return id;
    });
    override('tensorDataSync', (id) => {
      const r = refs.get(id);
      if (r && 'op' in r) refusal ??= `the function reads the values of ${program.ops[r.op].op}'s output`;
      return binding.tensorDataSync(id);
    });

    let outputs: Tensor[];
    (b as { binding: unknown }).binding = recorder;
    setRecordingGraph(true);
    try {
      outputs = this.fn(inputs);
    } finally {
      setRecordingGraph(false);
      (b as { binding: unknown }).binding = binding;
    }
    if (refusal) return { outputs, refusal };

    for (const t of outputs) program.results.push(refFor(idOf(t), 'a result'));
    const writes: Recording['writes'] = [];
    for (const [v, startId] of startIds) {
      const now = idOf(v);
      if (now === startId || now < 0) continue;
      writes.push({ variable: v, result: program.results.length });
      program.results.push(refFor(now, `variable ${v.name}`));
    }
    if (refusal) return { outputs, refusal };

    keyParts.push(
      JSON.stringify({
        ops: program.ops.map((o) => [o.op, o.attrs, o.inputs]),
        args: program.args,
        sources: sources.map((s) => ('input' in s ? s.input : s.variable.name)),
        results: program.results,
        writes: writes.map((w) => w.variable.name),
      }),
    );
    for (const c of program.constants) keyParts.push(Buffer.from(c.bytes).toString('base64'));
    return { outputs, rec: { program, sources, writes, returned: outputs.length, key: keyParts.join('|') } };
  }
}

/** TFOS_GRAPH_STEP=0 (or off) keeps training steps eager, to measure what the graph brings. */
export function graphStepsEnabled(value = process.env.TFOS_GRAPH_STEP): boolean {
  const v = value?.trim().toLowerCase();
  return !(v === '0' || v === 'off' || v === 'false' || v === 'no');
}

export type GradientsOf = (inputs: Tensor[], varList: Variable[]) => { value: tfTypes.Scalar; grads: tfTypes.NamedTensorMap };

type LossOf = (...inputs: Tensor[]) => tfTypes.Scalar;
const gradientsByLoss = new WeakMap<LossOf, GradientsOf>();

/**
 * The gradients of `lossOf(...inputs)` with respect to varList, as tf.variableGrads computes them,
 * run as one TensorFlow graph once the first calls agree (TracedFunction). The loss may depend on
 * the inputs, the variables and constants only. One recording per loss function: the same
 * `lossOf` gives back the same gradient function (`log` is the first caller's).
 */
export function tracedGradients(tf: TF, lossOf: LossOf, log?: (message: string) => void): GradientsOf {
  let gradientsOf = gradientsByLoss.get(lossOf);
  if (!gradientsOf) gradientsByLoss.set(lossOf, (gradientsOf = newTracedGradients(tf, lossOf, log)));
  return gradientsOf;
}

function newTracedGradients(tf: TF, lossOf: LossOf, log?: (message: string) => void): GradientsOf {
  let traced: { fn: TracedFunction; vars: Variable[]; withGradient: Variable[] } | undefined;
  return (inputs, varList) => {
    if (!traced || traced.vars.length !== varList.length || traced.vars.some((v, i) => v !== varList[i])) {
      traced?.fn.dispose();
      const vars = [...varList];
      const fn = new TracedFunction(
        tf,
        (ins) => {
          const { value, grads } = tf.variableGrads(() => lossOf(...ins), vars);
          // As tf.variableGrads: a variable the loss does not depend on gets no gradient. Which
          // ones do is the recording's structure, so a graph made from it returns the same list.
          traced!.withGradient = vars.filter((v) => grads[v.name] !== undefined);
          return [value, ...traced!.withGradient.map((v) => grads[v.name])];
        },
        log,
      );
      traced = { fn, vars, withGradient: [] };
    }
    const [value, ...grads] = traced.fn.call(inputs);
    const named: tfTypes.NamedTensorMap = {};
    traced.withGradient.forEach((v, i) => (named[v.name] = grads[i]));
    return { value: value as tfTypes.Scalar, grads: named };
  };
}
