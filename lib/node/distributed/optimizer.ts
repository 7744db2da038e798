/**
 * DistributedOptimizer: wraps any tfjs optimizer for data-parallel training.
 *
 *  - allreduce mode (default): the gradients of all variables are fused into as few Float32Arrays
 *    as possible (fusionBytes each), averaged across workers with ring all-reduce, and applied by
 *    the wrapped optimizer on every worker, so every worker holds identical weights.
 *  - ps mode: the fused gradients go to the ps nodes holding each variable (sharded by size), which
 *    apply the optimizer (sync: mean of all workers' gradients per step; async: each push on
 *    arrival) and send the new weights back.
 *
 * Initial weights come from the chief (rank `root`): broadcast (allreduce) or the chief's
 * initialization of the ps.
 *
 * Custom loop:   await dist.minimizeOn(lossOf, [xs, ys])   // the step as one TensorFlow graph
 *                await dist.minimize(() => loss(), false, varList)   // or applyGradients(grads)
 * model.fit:     dist.wrapModel(model); await model.fit(xs, ys, {...})
 * tfjs calls optimizer.minimize synchronously inside fit, so the optimizer that fit sees
 * (asOptimizer()) only stashes the step's gradients; a callback that fit awaits after every batch
 * (onBatchEnd) reduces and applies them before the next batch. wrapModel installs both.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { DistributedNode } from './node';
import { DistributedError, peerName } from './peers';
import { reduceBuffer, reduceBuffers } from './float-kernels';
import { assignShards, modelId, PsOptimizerState, PsWeights } from './ps';
import { tfjs as tf } from '../../platform/tfjs';
import { graphStepsEnabled, tracedGradients } from '../../tfjs-native/traced-function';

type Variable = tfTypes.Variable;
type Tensor = tfTypes.Tensor;
type Scalar = tfTypes.Scalar;
type Optimizer = tfTypes.Optimizer;
type LayersModel = tfTypes.LayersModel;
type NamedTensorMap = tfTypes.NamedTensorMap;
type NamedTensor = { name: string; tensor: Tensor };
/** A tf.Variable, or a layers LayerVariable (model.weights entries) that read()s one. */
export type VariableLike = Variable | { read(): Variable };

export interface DistributedOptimizerOptions {
  /** 'allreduce' (default) or 'ps' (needs ps nodes). */
  mode?: 'allreduce' | 'ps';
  /** ps mode: synchronous steps (default true) or asynchronous pushes. */
  sync?: boolean;
  /** How gradients of the workers combine: 'mean' (default) or 'sum'. */
  average?: 'mean' | 'sum';
  /** Largest fused gradient buffer in bytes (allreduce). Default 64 MiB. */
  fusionBytes?: number;
  /** Model name on the ps nodes (distinct names for several models). Default 'model'. */
  name?: string;
  /** Rank whose initial weights everyone starts from. Default 0 (the chief). */
  root?: number;
}

interface Slot {
  variable: Variable;
  shape: number[];
  size: number;
  buffer: number;
  offset: number;
}

function toVariable(v: VariableLike): Variable {
  if (v && typeof (v as Variable).assign === 'function') return v as Variable;
  if (v && typeof (v as { read(): Variable }).read === 'function') return (v as { read(): Variable }).read();
  throw new TypeError('expected a tf.Variable or a LayerVariable');
}

function isModel(x: unknown): x is LayersModel {
  return !!x && typeof x === 'object' && 'trainableWeights' in x && 'weights' in x && typeof (x as LayersModel).fit === 'function';
}

const NOT_FLUSHED =
  "DistributedOptimizer: the previous step's gradients were never reduced and applied. " +
  'model.fit needs dist.wrapModel(model) (or callbacks: [dist.callback()]); after model.trainOnBatch call await dist.flush() (or use await dist.trainOnBatch(model, x, y)).';

export class DistributedOptimizer {
  readonly inner: Optimizer;
  readonly mode: 'allreduce' | 'ps';
  readonly sync: boolean;
  readonly average: 'mean' | 'sum';
  readonly name: string;
  readonly root: number;
  private readonly fusionBytes: number;
  private readonly node: DistributedNode;
  private slots?: Slot[];
  private readonly byName = new Map<string, Slot>();
  private buffers: Float32Array[] = [];
  private psVersions: number[] = [];
  private initPromise?: Promise<void>;
  private stashed = false;
  private shim?: Optimizer;
  private stepsDone = 0;
  private readonly wrapped = new WeakSet<object>();
  /** Non-trainable float weights of the model (batch-norm moving statistics), kept equal on every worker. */
  private stateVars: Variable[] = [];
  private stateBuffer?: Float32Array;
  /** ps mode: optimizer state to start the ps nodes from (setWeights before init). */
  private startState?: NamedTensor[];

  constructor(
    server: { readonly distributed: DistributedNode } | DistributedNode,
    inner: Optimizer,
    opts: DistributedOptimizerOptions = {},
  ) {
    this.node = server instanceof DistributedNode ? server : server.distributed;
    if (!inner || typeof inner.applyGradients !== 'function')
      throw new TypeError('DistributedOptimizer wraps a tfjs optimizer (e.g. tf.train.adam(1e-3))');
    this.inner = inner;
    this.mode = opts.mode ?? 'allreduce';
    if (this.mode !== 'allreduce' && this.mode !== 'ps')
      throw new TypeError(`mode must be 'allreduce' or 'ps', not '${String(this.mode)}'`);
    this.sync = opts.sync ?? true;
    this.average = opts.average ?? 'mean';
    this.fusionBytes = Math.max(4, opts.fusionBytes ?? 64 << 20);
    this.name = opts.name ?? 'model';
    this.root = opts.root ?? 0;
    if (this.node.rank < 0)
      throw new DistributedError(`${this.node.selfName} is not a worker: DistributedOptimizer runs on chief and worker nodes`);
    if (this.mode === 'ps' && !this.node.psNodes.length) throw new DistributedError("mode 'ps' needs ps nodes (TFCluster.run numPs >= 1)");
    if (this.root < 0 || this.root >= this.node.size) throw new RangeError(`root ${this.root} is not a worker rank`);
  }

  /** Steps applied so far. */
  get steps(): number {
    return this.stepsDone;
  }

  /** The variables in fused order (after init). */
  get variables(): Variable[] {
    return (this.slots ?? []).map((s) => s.variable);
  }

  // ---- set-up -----------------------------------------------------------------------------

  /**
   * Fixes the variables to train and starts every worker from the root's values: a model
   * (its trainable weights; all its weights are broadcast) or a list of variables. Runs once;
   * later calls wait for the first. Every worker must call it (minimize / applyGradients / fit
   * call it for you).
   */
  init(source: LayersModel | VariableLike[]): Promise<void> {
    this.initPromise ??= this.doInit(source);
    return this.initPromise;
  }

  private async doInit(source: LayersModel | VariableLike[]): Promise<void> {
    let trainable: Variable[];
    let all: Variable[];
    if (isModel(source)) {
      trainable = source.trainableWeights.map((w) => toVariable(w as unknown as VariableLike));
      all = source.weights.map((w) => toVariable(w as unknown as VariableLike));
    } else if (Array.isArray(source)) {
      trainable = source.map(toVariable);
      all = trainable;
    } else throw new TypeError('DistributedOptimizer.init takes a model or a list of variables');
    if (!trainable.length) throw new Error('DistributedOptimizer: no trainable variables');
    const names = new Set(trainable.map((v) => v.name));
    this.stateVars = all.filter((v) => !names.has(v.name) && v.dtype === 'float32');
    this.layout(trainable);
    if (this.mode === 'allreduce') {
      await this.checkLayout();
      await this.broadcastVariables(all);
    } else await this.initPs();
  }

  private layout(vars: Variable[]): void {
    const slots: Slot[] = [];
    for (const v of vars) {
      if (v.dtype !== 'float32')
        throw new TypeError(`DistributedOptimizer: variable '${v.name}' is ${v.dtype}; only float32 variables are trained`);
      if (this.byName.has(v.name)) throw new Error(`DistributedOptimizer: variable '${v.name}' is listed twice`);
      const s: Slot = { variable: v, shape: v.shape.slice(), size: v.size, buffer: 0, offset: 0 };
      slots.push(s);
      this.byName.set(v.name, s);
    }
    const lengths: number[] = [];
    if (this.mode === 'allreduce') {
      const cap = Math.max(1, Math.floor(this.fusionBytes / 4));
      for (const s of slots) {
        if (!lengths.length || (lengths[lengths.length - 1] > 0 && lengths[lengths.length - 1] + s.size > cap)) lengths.push(0);
        s.buffer = lengths.length - 1;
        s.offset = lengths[s.buffer];
        lengths[s.buffer] += s.size;
      }
    } else {
      const numPs = this.node.psNodes.length;
      const shard = assignShards(
        slots.map((s) => s.size),
        numPs,
      );
      for (let p = 0; p < numPs; p++) lengths.push(0);
      slots.forEach((s, i) => {
        s.buffer = shard[i];
        s.offset = lengths[s.buffer];
        lengths[s.buffer] += s.size;
      });
      this.psVersions = lengths.map(() => 0);
    }
    // All-reduced buffers sum in place (float-kernels.ts): no staging copies. ps pushes sum on the ps.
    this.buffers = this.mode === 'allreduce' ? reduceBuffers(lengths) : lengths.map((n) => new Float32Array(n));
    this.slots = slots;
  }

  /** Every worker must have the same variables (count and sizes, in order) as the root. */
  private async checkLayout(): Promise<void> {
    if (this.node.size === 1) return;
    let h = 0x811c9dc5;
    let total = 0;
    for (const s of this.slots!) {
      total += s.size;
      for (const b of [s.size & 0xffff, s.size >>> 16]) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    }
    const mine = [this.slots!.length, total % 0x1000000, Math.floor(total / 0x1000000), h & 0xffff, h >>> 16];
    const sig = Float32Array.from(mine);
    await this.node.broadcast(sig, this.root);
    if (sig.some((v, i) => v !== mine[i])) {
      const rootName = peerName(this.node.workers[this.root]);
      throw new DistributedError(
        `the variables to train differ from ${rootName}'s: it has ${sig[0]} variables / ${sig[1] + sig[2] * 0x1000000} floats, ${this.node.selfName} has ${mine[0]} / ${total} (or different shapes): every worker must build the same model`,
        rootName,
      );
    }
  }

  /** Copies the root's values of `vars` into every worker's, in fused buffers. */
  async broadcastVariables(vars: VariableLike[]): Promise<void> {
    const t = tf();
    const list = vars.map(toVariable).filter((v) => v.dtype === 'float32');
    if (this.node.size === 1 || !list.length) return;
    const cap = Math.max(1, Math.floor(this.fusionBytes / 4));
    const groups: Variable[][] = [];
    let used = Infinity;
    for (const v of list) {
      if (used > 0 && used + v.size > cap) {
        groups.push([]);
        used = 0;
      }
      groups[groups.length - 1].push(v);
      used += v.size;
    }
    const isRoot = this.node.rank === this.root;
    for (const g of groups) {
      const buf = new Float32Array(g.reduce((n, v) => n + v.size, 0));
      if (isRoot) {
        let at = 0;
        for (const v of g) {
          buf.set(v.dataSync() as Float32Array, at);
          at += v.size;
        }
      }
      await this.node.broadcast(buf, this.root);
      if (!isRoot) {
        t.tidy(() => {
          let at = 0;
          for (const v of g) {
            v.assign(t.tensor(buf.subarray(at, at + v.size), v.shape, 'float32'));
            at += v.size;
          }
        });
      }
    }
  }

  private psConfigBase() {
    return {
      name: this.name,
      sync: this.sync,
      average: this.average,
      numWorkers: this.node.size,
      optimizer: { className: this.inner.getClassName(), config: this.inner.getConfig() as Record<string, unknown> },
    };
  }

  private async initPs(): Promise<void> {
    const ps = this.node.ps;
    const id = modelId(this.name);
    const base = this.psConfigBase();
    const used = this.buffers.map((b, p) => (b.length ? p : -1)).filter((p) => p >= 0);
    await Promise.all(used.map((p) => ps.configure(p, id, { ...base, size: this.buffers[p].length })));
    if (this.node.rank === this.root) {
      if (this.startState) {
        const states = this.psStatesFrom(this.startState);
        await Promise.all(used.map((p) => ps.initState(p, id, states[p])));
      }
      for (const s of this.slots!) this.buffers[s.buffer].set(s.variable.dataSync() as Float32Array, s.offset);
      await Promise.all(used.map((p) => ps.init(p, id, this.buffers[p])));
    }
    const limit = this.node.opts.connectTimeoutMs + Math.max(2000, this.node.opts.timeoutMs / 2);
    const replies: Array<PsWeights | undefined> = [];
    await Promise.all(used.map(async (p) => (replies[p] = await ps.pull(p, id, 0, limit))));
    this.assignFromPs(replies);
  }

  private assignFromPs(replies: Array<PsWeights | undefined>): void {
    const t = tf();
    t.tidy(() => {
      for (const s of this.slots!) {
        const r = replies[s.buffer];
        if (r) s.variable.assign(t.tensor(r.values.subarray(s.offset, s.offset + s.size), s.shape, 'float32'));
      }
    });
    replies.forEach((r, p) => {
      if (r) this.psVersions[p] = r.version;
    });
  }

  // ---- optimizer state (checkpoints) ----------------------------------------------------------

  /**
   * The wrapped optimizer's state in tf.Optimizer.getWeights()'s layout ('iter', then each kind of
   * slot for every variable in order): the local optimizer's (allreduce), or gathered from the ps
   * nodes, which hold it in ps mode. What a checkpoint saves; setWeights() restores it in either mode.
   */
  async getWeights(): Promise<NamedTensor[]> {
    if (this.mode === 'allreduce') return this.inner.getWeights();
    await this.initPromise;
    if (!this.slots)
      throw new Error('DistributedOptimizer.getWeights: not initialized (ps mode reads the state from the ps nodes after init)');
    const t = tf();
    const ps = this.node.ps;
    const id = modelId(this.name);
    const states: Array<(PsOptimizerState & { version: number }) | undefined> = await Promise.all(
      this.buffers.map((b, p) => (b.length ? ps.state(p, id, b.length) : Promise.resolve(undefined))),
    );
    const present = states.filter((x): x is PsOptimizerState & { version: number } => !!x);
    const suffixes = present[0].slots.map((x) => x.suffix);
    present.forEach((x, p) => {
      if (x.slots.map((y) => y.suffix).join() !== suffixes.join())
        throw new DistributedError(`ps:${p} holds optimizer slots [${x.slots.map((y) => y.suffix)}], ps:0 [${suffixes}]`);
    });
    const out: NamedTensor[] = [{ name: 'iter', tensor: t.scalar(present[0].iterations, 'int32') }];
    suffixes.forEach((suffix, j) => {
      for (const s of this.slots!) {
        const values = states[s.buffer]!.slots[j].values.subarray(s.offset, s.offset + s.size);
        out.push({ name: `${s.variable.name}${suffix}`, tensor: t.tensor(values, s.shape, 'float32') });
      }
    });
    return out;
  }

  /**
   * Restores state saved by getWeights() (either mode's). allreduce: into the wrapped optimizer.
   * ps mode: call it before init (before the first step); the root hands it to the ps nodes with
   * the initial weights, and the other workers' calls are no-ops (the ps holds one copy).
   */
  async setWeights(list: NamedTensor[]): Promise<void> {
    if (this.mode === 'allreduce') return this.inner.setWeights(list);
    if (this.initPromise)
      throw new Error('DistributedOptimizer.setWeights: in ps mode the optimizer state is restored before init (before the first step)');
    this.startState = list;
  }

  /** Splits a getWeights()-layout state into each ps node's flat slots. */
  private psStatesFrom(list: NamedTensor[]): PsOptimizerState[] {
    const n = this.slots!.length;
    const [iter, ...rest] = list;
    if (!iter || iter.name !== 'iter' || rest.length % n !== 0)
      throw new Error(
        `optimizer state to restore has ${list.length} entries; expected 'iter' and then a multiple of the ${n} variables trained`,
      );
    const iterations = (iter.tensor.dataSync() as Int32Array | Float32Array)[0];
    const kinds = rest.length / n;
    const states: PsOptimizerState[] = this.buffers.map(() => ({ iterations, slots: [] }));
    for (let j = 0; j < kinds; j++) {
      const first = rest[j * n].name;
      const suffix = first.slice(first.lastIndexOf('/'));
      const flats = this.buffers.map((b) => new Float32Array(b.length));
      this.slots!.forEach((s, i) => {
        const x = rest[j * n + i];
        if (x.tensor.size !== s.size)
          throw new Error(`optimizer slot '${x.name}' has ${x.tensor.size} elements, the variable '${s.variable.name}' ${s.size}`);
        flats[s.buffer].set(x.tensor.dataSync() as Float32Array, s.offset);
      });
      flats.forEach((values, p) => states[p].slots.push({ suffix, values }));
    }
    return states;
  }

  // ---- steps ------------------------------------------------------------------------------

  private fill(grads: NamedTensorMap | NamedTensor[]): void {
    const map: NamedTensorMap = Array.isArray(grads) ? Object.fromEntries(grads.map((g) => [g.name, g.tensor])) : grads;
    for (const name of Object.keys(map)) {
      if (!this.byName.has(name))
        throw new Error(
          `DistributedOptimizer: gradient for '${name}', which is not among the ${this.slots!.length} variables it was initialized with`,
        );
    }
    for (const s of this.slots!) {
      const g = map[s.variable.name];
      const buf = this.buffers[s.buffer];
      if (!g) buf.fill(0, s.offset, s.offset + s.size);
      else {
        if (g.size !== s.size)
          throw new Error(`DistributedOptimizer: gradient for '${s.variable.name}' has ${g.size} elements, the variable ${s.size}`);
        buf.set(g.dataSync() as Float32Array, s.offset);
      }
    }
  }

  private async reduceAndApply(): Promise<void> {
    const t = tf();
    if (this.mode === 'allreduce') {
      await Promise.all(this.buffers.map((b) => this.node.allReduce(b, this.average)));
      t.tidy(() => {
        const map: NamedTensorMap = {};
        for (const s of this.slots!)
          map[s.variable.name] = t.tensor(this.buffers[s.buffer].subarray(s.offset, s.offset + s.size), s.shape, 'float32');
        this.inner.applyGradients(map);
      });
    } else {
      const ps = this.node.ps;
      const id = modelId(this.name);
      const replies = await Promise.all(
        this.buffers.map((b, p) => (b.length ? ps.pushPull(p, id, this.psVersions[p], b) : Promise.resolve(undefined))),
      );
      this.assignFromPs(replies);
    }
    await this.syncState();
    this.stepsDone++;
  }

  /**
   * Averages the model's non-trainable weights (batch-norm moving means and variances, which each
   * worker updates from its own batches) across the workers, so every worker — and every
   * checkpoint and evaluation — sees the same values. Runs after every step; a no-op for models
   * without such weights and on one worker.
   */
  async syncState(): Promise<void> {
    if (this.node.size === 1 || !this.stateVars.length) return;
    const t = tf();
    const total = this.stateVars.reduce((n, v) => n + v.size, 0);
    const buf = (this.stateBuffer ??= reduceBuffer(total));
    let at = 0;
    for (const v of this.stateVars) {
      buf.set(v.dataSync() as Float32Array, at);
      at += v.size;
    }
    await this.node.allReduce(buf, 'mean');
    t.tidy(() => {
      let off = 0;
      for (const v of this.stateVars) {
        v.assign(t.tensor(buf.subarray(off, off + v.size), v.shape, 'float32'));
        off += v.size;
      }
    });
  }

  /**
   * One training step: gradients of `f` (w.r.t. varList, default the initialized variables),
   * combined across workers and applied. Resolves to the local loss when returnCost.
   */
  async minimize(f: () => Scalar, returnCost = false, varList?: Variable[]): Promise<Scalar | null> {
    if (this.stashed) throw new Error(NOT_FLUSHED);
    await this.initFor(f, varList);
    return this.step(this.inner.computeGradients(f, varList ?? this.variables), returnCost);
  }

  /**
   * A training step whose loss is a function of `inputs` (and the variables and constants) only:
   * as minimize, but once its first calls agree the forward and backward pass run as one
   * TensorFlow graph (lib/tfjs-native/traced-function.ts; TFOS_GRAPH_STEP=0 keeps them eager).
   * Pass the same `lossOf` every step: each function is recorded once.
   */
  async minimizeOn(
    lossOf: (...inputs: Tensor[]) => Scalar,
    inputs: Tensor[],
    returnCost = false,
    varList?: Variable[],
  ): Promise<Scalar | null> {
    if (this.stashed) throw new Error(NOT_FLUSHED);
    await this.initFor(() => lossOf(...inputs), varList);
    if (!graphStepsEnabled())
      return this.step(
        this.inner.computeGradients(() => lossOf(...inputs), varList ?? this.variables),
        returnCost,
      );
    const gradientsOf = tracedGradients(tf(), lossOf, (m) => this.node.opts.log(`tfos: ${this.node.selfName}: training step: ${m}`));
    return this.step(gradientsOf(inputs, varList ?? this.variables), returnCost);
  }

  /** Before the first step: which variables f trains (unless given), started from the root's values. */
  private async initFor(f: () => Scalar, varList?: Variable[]): Promise<void> {
    const t = tf();
    if (varList) await this.init(varList);
    else if (!this.initPromise) {
      // Which variables f trains: probe once (gradients from weights not yet synchronized are
      // discarded), then start everyone from the root's values.
      const probe = this.inner.computeGradients(f);
      const vars = Object.keys(probe.grads).map((n) => t.engine().registeredVariables[n]);
      t.dispose([probe.value, ...Object.values(probe.grads)]);
      await this.init(vars);
    } else await this.initPromise;
  }

  /** Combines one step's gradients across workers and applies them; the loss when returnCost. */
  private async step({ value, grads }: { value: Scalar; grads: NamedTensorMap }, returnCost: boolean): Promise<Scalar | null> {
    const t = tf();
    if (this.mode === 'allreduce' && this.node.size === 1) {
      // One worker: nothing to combine, so the gradients go straight to the optimizer instead of
      // through the fused host buffers (two copies of every weight per step).
      try {
        this.inner.applyGradients(grads);
      } finally {
        t.dispose(Object.values(grads));
      }
      this.stepsDone++;
      if (returnCost) return value;
      value.dispose();
      return null;
    }
    try {
      this.fill(grads);
    } finally {
      t.dispose(Object.values(grads));
    }
    try {
      await this.reduceAndApply();
    } catch (err) {
      value.dispose();
      throw err;
    }
    if (returnCost) return value;
    value.dispose();
    return null;
  }

  /** Combines `grads` (keyed by variable name) across workers and applies them. */
  async applyGradients(grads: NamedTensorMap | NamedTensor[]): Promise<void> {
    if (this.stashed) throw new Error(NOT_FLUSHED);
    if (!this.slots) {
      const t = tf();
      const names = Array.isArray(grads) ? grads.map((g) => g.name) : Object.keys(grads);
      await this.init(
        names.map((n) => {
          const v = t.engine().registeredVariables[n];
          if (!v) throw new Error(`DistributedOptimizer: no variable named '${n}'`);
          return v;
        }),
      );
    }
    this.fill(grads);
    await this.reduceAndApply();
  }

  // ---- model.fit --------------------------------------------------------------------------

  /**
   * The tf.Optimizer that model.fit sees: its applyGradients only stashes the gradients, which the
   * callback() then combines and applies after each batch.
   */
  asOptimizer(): Optimizer {
    if (this.shim) return this.shim;
    const t = tf();
    const owner = this;
    class DistributedFitOptimizer extends t.Optimizer {
      applyGradients(g: NamedTensorMap | NamedTensor[]): void {
        owner.stash(g);
      }
      getConfig() {
        return owner.inner.getConfig();
      }
      override getClassName(): string {
        return owner.inner.getClassName();
      }
      override get iterations(): number {
        return owner.inner.iterations;
      }
      override getWeights() {
        return owner.inner.getWeights();
      }
      override setWeights(w: NamedTensor[]) {
        return owner.inner.setWeights(w);
      }
      override dispose(): void {
        /* the wrapped optimizer belongs to the caller */
      }
    }
    this.shim = new DistributedFitOptimizer();
    return this.shim;
  }

  private stash(g: NamedTensorMap | NamedTensor[]): void {
    if (this.stashed) throw new Error(NOT_FLUSHED);
    if (!this.slots)
      throw new Error(
        'DistributedOptimizer: not initialized. model.fit needs dist.wrapModel(model) (or callbacks: [dist.callback()]); for model.trainOnBatch use await dist.trainOnBatch(model, x, y).',
      );
    this.fill(g);
    this.stashed = true;
  }

  /** Combines and applies gradients stashed by asOptimizer() (resolves false when none). */
  async flush(): Promise<boolean> {
    if (!this.stashed) return false;
    try {
      await this.reduceAndApply();
    } finally {
      this.stashed = false;
    }
    return true;
  }

  /** Makes `model` train through this optimizer: swaps in asOptimizer() and initializes. */
  async prepareModel(model: LayersModel): Promise<void> {
    const shim = this.asOptimizer();
    if (model.optimizer !== shim) {
      if (model.optimizer != null && model.optimizer !== this.inner) {
        throw new Error(
          'DistributedOptimizer: the model was compiled with a different optimizer than the one this DistributedOptimizer wraps (compile with dist.inner or dist.asOptimizer())',
        );
      }
      if (model.optimizer == null)
        throw new Error('DistributedOptimizer: compile the model first (model.compile({ optimizer: dist.asOptimizer(), loss }))');
      model.optimizer = shim;
    }
    await this.init(model);
  }

  /** A callback for model.fit / fitDataset: initializes on train begin, applies after each batch. */
  callback(): tfTypes.CustomCallback {
    const t = tf();
    const owner = this;
    let model: LayersModel | undefined;
    const cb = new t.CustomCallback({
      onTrainBegin: async () => {
        if (model) await owner.prepareModel(model);
      },
      onBatchEnd: async () => {
        await owner.flush();
      },
      onTrainEnd: async () => {
        await owner.flush();
      },
    });
    const setModel = cb.setModel.bind(cb);
    cb.setModel = (m) => {
      model = m as unknown as LayersModel;
      setModel(m);
    };
    return cb;
  }

  /** Makes model.fit / model.fitDataset train distributed (adds callback() to every call). */
  wrapModel<M extends LayersModel>(model: M): M {
    if (this.wrapped.has(model)) return model;
    if (model.optimizer == null)
      throw new Error(
        'DistributedOptimizer.wrapModel: compile the model first (model.compile({ optimizer: dist.inner or dist.asOptimizer(), loss }))',
      );
    if (model.optimizer !== this.inner && model.optimizer !== this.asOptimizer()) {
      throw new Error(
        'DistributedOptimizer.wrapModel: the model was compiled with a different optimizer than the one this DistributedOptimizer wraps',
      );
    }
    model.optimizer = this.asOptimizer();
    type FitArgs = { callbacks?: unknown; yieldEvery?: unknown } | undefined;
    const withCb = <A extends FitArgs>(args: A): A =>
      ({ ...(args ?? {}), callbacks: this.withCallback(args?.callbacks, args?.yieldEvery) }) as A;
    const fit = model.fit.bind(model);
    const fitDataset = model.fitDataset.bind(model);
    model.fit = ((x: unknown, y: unknown, args?: FitArgs) => fit(x as never, y as never, withCb(args) as never)) as M['fit'];
    model.fitDataset = ((ds: unknown, args: FitArgs) => fitDataset(ds as never, withCb(args) as never)) as M['fitDataset'];
    this.wrapped.add(model);
    return model;
  }

  private withCallback(cbs: unknown, yieldEvery: unknown): unknown[] {
    const t = tf();
    const ours = this.callback();
    if (cbs == null) return [ours];
    const list = Array.isArray(cbs) ? cbs : [cbs];
    const isInstance = (c: { setParams?: unknown; setModel?: unknown }) =>
      typeof c?.setParams === 'function' && typeof c?.setModel === 'function';
    return [ours, ...list.map((c) => (isInstance(c) ? c : new t.CustomCallback(c, yieldEvery as never)))];
  }

  /** model.trainOnBatch, distributed. */
  async trainOnBatch(model: LayersModel, x: Tensor | Tensor[], y: Tensor | Tensor[]): Promise<number | number[]> {
    await this.prepareModel(model);
    const out = await model.trainOnBatch(x, y);
    await this.flush();
    return out;
  }

  /** Frees the fused buffers (not the wrapped optimizer, which is the caller's). */
  dispose(): void {
    this.buffers = [];
  }
}
