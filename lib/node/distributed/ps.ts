/**
 * Parameter-server mode. Each ps node keeps, per model, one flat float32 variable holding the
 * variables assigned to it (assignShards: by size, greedily) and an instance of the wrapped tfjs
 * optimizer rebuilt from its class name and config. Workers push gradients and get the updated
 * weights back in the same round trip.
 *
 *  - sync: a step completes once every worker has pushed; the ps applies the mean (or sum) of the
 *    gradients once and answers every pusher with the new weights (version + 1).
 *  - async: every push is applied on arrival and answered with the weights after it.
 *
 * tfjs optimizers are element-wise, so one flat variable per ps updates exactly as the separate
 * variables would; for the same reason the optimizer's slots (momentum, Adam's moments) are flat
 * too, and a worker reads them (PS_STATE, for checkpoints) or sets them before the first step
 * (PS_INIT_STATE, on resume) as slices of the same layout.
 */
import type { Optimizer, Variable } from '@tensorflow/tfjs';
import { dialWithRetry } from './dial';
import { addInto, divideRange, reduceBuffer } from './float-kernels';
import { Link } from './link';
import type { PeerGroup } from './group';
import { DistributedError, peerName, PeerId } from './peers';
import { tfjs as tf } from '../../platform/tfjs';
import { Channel, Frame, FrameFields, FrameType, payloadFloats, floatBytes } from './wire';

export interface PsModelConfig {
  /** For messages only. */
  name: string;
  /** Floats this ps holds for the model. */
  size: number;
  sync: boolean;
  average: 'mean' | 'sum';
  numWorkers: number;
  optimizer: { className: string; config: Record<string, unknown> };
}

/** Greedy size-balanced assignment of variables to ps nodes (largest first, ties to lowest index). */
export function assignShards(sizes: number[], numPs: number): number[] {
  if (numPs < 1) throw new RangeError('assignShards needs at least one ps');
  const load = new Array<number>(numPs).fill(0);
  const out = new Array<number>(sizes.length).fill(0);
  const order = sizes.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [size, i] of order) {
    let best = 0;
    for (let p = 1; p < numPs; p++) if (load[p] < load[best]) best = p;
    out[i] = best;
    load[best] += size;
  }
  return out;
}

/** FNV-1a of a model name: the model id on the wire. */
export function modelId(name: string): number {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(name, 'utf8')) {
    h ^= c;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function errorPayload(message: string, peer?: string): Buffer {
  return Buffer.from(JSON.stringify({ message, peer }), 'utf8');
}

/** An optimizer's state on one ps: its step count and one flat slot per kind (e.g. '/m', '/v' for Adam). */
export interface PsOptimizerState {
  iterations: number;
  slots: Array<{ suffix: string; values: Float32Array }>;
}

/** u32 LE length of a JSON header {iterations, suffixes}, the header, padding to 4 bytes, then the slots' floats. */
export function encodePsState(state: PsOptimizerState): Buffer {
  const head = Buffer.from(JSON.stringify({ iterations: state.iterations, suffixes: state.slots.map((x) => x.suffix) }), 'utf8');
  const pad = (4 - ((4 + head.length) % 4)) % 4;
  const floats = state.slots.reduce((n, x) => n + x.values.length, 0);
  const out = Buffer.alloc(4 + head.length + pad + floats * 4);
  out.writeUInt32LE(head.length, 0);
  head.copy(out, 4);
  let at = 4 + head.length + pad;
  for (const x of state.slots) {
    floatBytes(x.values).copy(out, at);
    at += x.values.byteLength;
  }
  return out;
}

/** Inverse of encodePsState for a model of `size` floats per slot. */
export function decodePsState(p: Buffer, size: number): PsOptimizerState {
  if (p.length < 4) throw new Error(`optimizer state of ${p.length} bytes has no header`);
  const len = p.readUInt32LE(0);
  if (4 + len > p.length) throw new Error(`optimizer state header of ${len} bytes overruns the ${p.length}-byte payload`);
  const head = JSON.parse(p.subarray(4, 4 + len).toString('utf8')) as { iterations: number; suffixes: string[] };
  const start = 4 + len + ((4 - ((4 + len) % 4)) % 4);
  const floats = payloadFloats(Buffer.from(p.subarray(start)));
  if (floats.length !== head.suffixes.length * size)
    throw new Error(`optimizer state holds ${floats.length} floats, expected ${head.suffixes.length} slots × ${size}`);
  return {
    iterations: head.iterations,
    slots: head.suffixes.map((suffix, j) => ({ suffix, values: floats.subarray(j * size, (j + 1) * size) })),
  };
}

let variableCounter = 0;

class PsModel {
  initialized = false;
  /** The first PS_INIT is being applied (its optimizer state is set asynchronously). */
  initializing = false;
  /** Optimizer state to start from (PS_INIT_STATE), applied by the first PS_INIT. */
  initialState?: PsOptimizerState;
  version = 0;
  variable?: Variable;
  optimizer?: Optimizer;
  acc?: Float32Array;
  readonly pushers = new Map<string, { link: Link; seq: number }>();
  stepTimer?: NodeJS.Timeout;
  initTimer?: NodeJS.Timeout;
  pulls: Array<{ link: Link; seq: number; minVersion: number }> = [];
  broken?: { message: string; peer?: string };
  /** Workers whose connection closed (sync: no step can complete without them). */
  readonly gone = new Map<string, string>();

  constructor(
    readonly id: number,
    readonly cfg: PsModelConfig,
  ) {}
}

class RequestError extends Error {
  constructor(
    message: string,
    readonly peer?: string,
  ) {
    super(message);
  }
}

/** Serves the models of one ps node. */
export class PsService {
  private readonly models = new Map<number, PsModel>();
  private readonly links = new Set<Link>();

  constructor(private readonly node: PeerGroup) {}

  adopt(peer: PeerId, est: import('./auth').Established): void {
    const link: Link = new Link(peer, est, {
      pingMs: this.node.opts.pingMs,
      position: () => 0,
      deliver: (f) => this.onFrame(link, f),
      onClose: (err, l) => this.onLinkClose(l, err),
    });
    this.links.add(link);
  }

  private onFrame(link: Link, f: Frame): void {
    try {
      this.handle(link, f);
    } catch (err) {
      const e = err as RequestError;
      this.reply(link, FrameType.PS_ERROR, { seq: f.seq }, errorPayload(`${this.node.selfName}: ${e.message}`, e.peer));
    }
  }

  private reply(link: Link, type: number, fields: FrameFields, payload?: Buffer): void {
    try {
      link.send(type, fields, payload);
    } catch {
      /* the worker is gone */
    }
  }

  private need(id: number): PsModel {
    const m = this.models.get(id);
    if (!m) throw new RequestError(`model id ${id} is unknown (workers configure it first)`);
    if (m.broken) throw new RequestError(m.broken.message, m.broken.peer);
    return m;
  }

  private handle(link: Link, f: Frame): void {
    switch (f.type) {
      case FrameType.PS_CONFIG: {
        const cfg = JSON.parse(f.payload.toString('utf8')) as PsModelConfig;
        const m = this.models.get(f.aux);
        if (!m) this.models.set(f.aux, new PsModel(f.aux, cfg));
        else if (
          m.cfg.size !== cfg.size ||
          m.cfg.sync !== cfg.sync ||
          m.cfg.numWorkers !== cfg.numWorkers ||
          m.cfg.average !== cfg.average
        ) {
          const d = (c: PsModelConfig) => `${c.size} floats, ${c.sync ? 'sync' : 'async'}, ${c.average}, ${c.numWorkers} workers`;
          throw new RequestError(
            `${link.name} configures model '${cfg.name}' as ${d(cfg)} but it is ${d(m.cfg)}: every worker must build the same model`,
            link.name,
          );
        }
        this.reply(link, FrameType.PS_ACK, { seq: f.seq });
        return;
      }
      case FrameType.PS_INIT: {
        const m = this.need(f.aux);
        const values = payloadFloats(f.payload);
        if (values.length !== m.cfg.size)
          throw new RequestError(
            `${link.name} initialized model '${m.cfg.name}' with ${values.length} floats, expected ${m.cfg.size}`,
            link.name,
          );
        if (m.initialized || m.initializing) {
          this.reply(link, FrameType.PS_ACK, { seq: f.seq, total: m.version });
          return;
        }
        this.initialize(m, values).then(
          () => this.reply(link, FrameType.PS_ACK, { seq: f.seq, total: m.version }),
          (err: Error) => {
            this.fail(m, `initializing model '${m.cfg.name}' failed: ${err.message}`);
            this.reply(link, FrameType.PS_ERROR, { seq: f.seq }, errorPayload(`${this.node.selfName}: ${err.message}`));
          },
        );
        return;
      }
      case FrameType.PS_INIT_STATE: {
        const m = this.need(f.aux);
        if (!m.initialized && !m.initializing) m.initialState = decodePsState(f.payload, m.cfg.size);
        this.reply(link, FrameType.PS_ACK, { seq: f.seq, total: m.version });
        return;
      }
      case FrameType.PS_STATE: {
        const m = this.need(f.aux);
        if (!m.initialized)
          throw new RequestError(`${link.name} asked for the optimizer state of model '${m.cfg.name}' before it was initialized`);
        const version = m.version;
        this.optimizerState(m).then(
          (state) => this.reply(link, FrameType.PS_STATE, { seq: f.seq, total: version, aux: m.id }, encodePsState(state)),
          (err: Error) => this.reply(link, FrameType.PS_ERROR, { seq: f.seq }, errorPayload(`${this.node.selfName}: ${err.message}`)),
        );
        return;
      }
      case FrameType.PS_PUSH: {
        const m = this.need(f.aux);
        if (!m.initialized)
          throw new RequestError(`${link.name} pushed gradients to model '${m.cfg.name}' before the chief initialized it`, link.name);
        const grads = payloadFloats(f.payload);
        if (grads.length !== m.cfg.size)
          throw new RequestError(
            `${link.name} pushed ${grads.length} gradient floats to model '${m.cfg.name}', expected ${m.cfg.size}`,
            link.name,
          );
        if (m.cfg.sync) this.syncPush(m, link, f.seq, f.total, grads);
        else {
          this.apply(m, grads);
          const bytes = this.snapshot(m);
          this.reply(link, FrameType.PS_WEIGHTS, { seq: f.seq, total: m.version, aux: m.id }, bytes);
          this.servePulls(m, bytes);
        }
        return;
      }
      case FrameType.PS_PULL: {
        const m = this.need(f.aux);
        if (m.initialized && m.version >= f.total) {
          this.reply(link, FrameType.PS_WEIGHTS, { seq: f.seq, total: m.version, aux: m.id }, this.snapshot(m));
          return;
        }
        m.pulls.push({ link, seq: f.seq, minVersion: f.total });
        if (!m.initialized && !m.initTimer) {
          const chief = this.node.workers[0];
          m.initTimer = setTimeout(
            () =>
              this.fail(
                m,
                `model '${m.cfg.name}' was not initialized by ${chief ? peerName(chief) : 'the chief'} within ${(this.node.opts.connectTimeoutMs / 1000).toFixed(1)} s`,
                chief && peerName(chief),
              ),
            this.node.opts.connectTimeoutMs,
          );
          m.initTimer.unref();
        }
        return;
      }
      default:
        throw new RequestError(`unexpected frame type ${f.type} on the ps channel`);
    }
  }

  private async initialize(m: PsModel, values: Float32Array): Promise<void> {
    m.initializing = true;
    const t = tf();
    const entry = t.serialization.SerializationMap.getMap().classNameMap[m.cfg.optimizer.className];
    if (!entry)
      throw new RequestError(
        `optimizer class '${m.cfg.optimizer.className}' is not registered with tfjs on the ps (register custom optimizers with tf.serialization.registerClass in the ps code too)`,
      );
    const [cls, fromConfig] = entry;
    m.optimizer = fromConfig(cls, m.cfg.optimizer.config as never) as unknown as Optimizer;
    m.variable = t.variable(t.tensor1d(values.slice()), true, `tfos_ps${this.node.self.index}_${m.id}_${++variableCounter}`);
    const start = m.initialState;
    if (start) {
      // tfjs optimizers restore their slots by position (one variable here: one slot per kind).
      const name = m.variable.name;
      await m.optimizer.setWeights([
        { name: 'iter', tensor: t.scalar(start.iterations, 'int32') },
        ...start.slots.map((x) => ({ name: `${name}${x.suffix}`, tensor: t.tensor1d(x.values.slice()) })),
      ]);
      m.initialState = undefined;
    }
    m.initialized = true;
    m.initializing = false;
    clearTimeout(m.initTimer);
    this.servePulls(m);
  }

  /** The optimizer's step count and slots, each named by what follows the ps variable's name. */
  private async optimizerState(m: PsModel): Promise<PsOptimizerState> {
    const name = m.variable!.name;
    const weights = await m.optimizer!.getWeights();
    let iterations = 0;
    const slots: PsOptimizerState['slots'] = [];
    for (const w of weights) {
      if (w.name === 'iter') {
        iterations = (w.tensor.dataSync() as Int32Array | Float32Array)[0];
        w.tensor.dispose();
      } else {
        if (!w.name.startsWith(name)) throw new Error(`optimizer slot '${w.name}' does not belong to the ps variable '${name}'`);
        slots.push({ suffix: w.name.slice(name.length), values: (w.tensor.dataSync() as Float32Array).slice() });
      }
    }
    return { iterations, slots };
  }

  private apply(m: PsModel, grads: Float32Array): void {
    const t = tf();
    t.tidy(() => {
      m.optimizer!.applyGradients({ [m.variable!.name]: t.tensor1d(grads) });
    });
    m.version++;
  }

  private snapshot(m: PsModel): Buffer {
    return floatBytes((m.variable!.dataSync() as Float32Array).slice());
  }

  private servePulls(m: PsModel, bytes?: Buffer): void {
    if (!m.initialized) return;
    const ready = m.pulls.filter((p) => p.minVersion <= m.version);
    if (!ready.length) return;
    m.pulls = m.pulls.filter((p) => p.minVersion > m.version);
    const b = bytes ?? this.snapshot(m);
    for (const p of ready) this.reply(p.link, FrameType.PS_WEIGHTS, { seq: p.seq, total: m.version, aux: m.id }, b);
  }

  private syncPush(m: PsModel, link: Link, seq: number, base: number, grads: Float32Array): void {
    if (base !== m.version)
      throw new RequestError(
        `${link.name} pushed gradients computed on version ${base} while model '${m.cfg.name}' is at version ${m.version}`,
        link.name,
      );
    if (m.pushers.has(link.name))
      throw new RequestError(`${link.name} pushed twice for step ${m.version + 1} of model '${m.cfg.name}'`, link.name);
    m.acc ??= reduceBuffer(m.cfg.size);
    if (m.pushers.size === 0) {
      m.acc.set(grads);
      const limit = this.node.opts.timeoutMs;
      m.stepTimer = setTimeout(() => {
        const missing = this.node.workers.map(peerName).filter((n) => !m.pushers.has(n));
        this.fail(
          m,
          `step ${m.version + 1} of model '${m.cfg.name}' waited ${(limit / 1000).toFixed(1)} s for gradients from ${missing.join(', ')}`,
          missing[0],
        );
      }, limit);
      m.stepTimer.unref();
    } else {
      const acc = m.acc;
      addInto(acc, 0, grads, acc.length);
    }
    m.pushers.set(link.name, { link, seq });
    if (m.pushers.size >= m.cfg.numWorkers) {
      clearTimeout(m.stepTimer);
      const acc = m.acc;
      if (m.cfg.average === 'mean') {
        const n = m.cfg.numWorkers;
        divideRange(acc, 0, acc.length, n);
      }
      this.apply(m, acc);
      const bytes = this.snapshot(m);
      for (const p of m.pushers.values()) this.reply(p.link, FrameType.PS_WEIGHTS, { seq: p.seq, total: m.version, aux: m.id }, bytes);
      m.pushers.clear();
      this.servePulls(m, bytes);
      return;
    }
    const goneMissing = [...m.gone.entries()].filter(([n]) => !m.pushers.has(n));
    if (goneMissing.length)
      this.fail(
        m,
        `${goneMissing[0][0]} is gone (${goneMissing[0][1]}), so step ${m.version + 1} of model '${m.cfg.name}' cannot complete`,
        goneMissing[0][0],
      );
  }

  /** Breaks a model: every waiting and later request gets the error. */
  private fail(m: PsModel, message: string, peer?: string): void {
    if (m.broken) return;
    m.broken = { message, peer };
    clearTimeout(m.stepTimer);
    clearTimeout(m.initTimer);
    const payload = errorPayload(`${this.node.selfName}: ${message}`, peer);
    for (const p of m.pushers.values()) this.reply(p.link, FrameType.PS_ERROR, { seq: p.seq }, payload);
    for (const p of m.pulls) this.reply(p.link, FrameType.PS_ERROR, { seq: p.seq }, payload);
    m.pushers.clear();
    m.pulls = [];
  }

  private onLinkClose(link: Link, err: DistributedError): void {
    this.links.delete(link);
    for (const m of this.models.values()) {
      m.pulls = m.pulls.filter((p) => p.link !== link);
      if (!m.cfg.sync) continue;
      m.gone.set(link.name, err.message);
      if (m.pushers.size > 0 && !m.pushers.has(link.name)) {
        this.fail(
          m,
          `${link.name} disconnected before pushing its gradients for step ${m.version + 1} of model '${m.cfg.name}' (${err.message})`,
          link.name,
        );
      }
    }
  }

  async close(err: DistributedError): Promise<void> {
    const closing = [...this.links].map((l) => l.close(err.message));
    this.links.clear();
    for (const m of this.models.values()) {
      clearTimeout(m.stepTimer);
      clearTimeout(m.initTimer);
      m.variable?.dispose();
      m.optimizer?.dispose();
    }
    this.models.clear();
    await Promise.all(closing);
  }
}

interface Pending {
  resolve: (f: Frame) => void;
  reject: (e: Error) => void;
  link: Link;
  sent: number;
  limitMs: number;
  what: string;
}

export interface PsWeights {
  version: number;
  values: Float32Array;
}

/** A worker's client of the ps nodes (one link per ps, made on first use). */
export class PsClient {
  private readonly links = new Map<number, Promise<Link>>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private timer?: NodeJS.Timeout;
  private closedError?: DistributedError;

  constructor(private readonly node: PeerGroup) {}

  get numPs(): number {
    return this.node.psNodes.length;
  }

  private connect(i: number): Promise<Link> {
    let p = this.links.get(i);
    if (!p) {
      const target = this.node.psNodes[i];
      if (!target) return Promise.reject(new RangeError(`there is no ps:${i} (the cluster has ${this.node.psNodes.length} ps nodes)`));
      p = dialWithRetry(
        this.node.dialOptions(Channel.PS, target),
        Date.now() + this.node.opts.connectTimeoutMs,
        (est) =>
          new Link(target, est, {
            pingMs: this.node.opts.pingMs,
            position: () => 0,
            deliver: (f) => this.onFrame(f),
            onClose: (err, l) => this.onClose(err, l),
          }),
        () => this.closedError ?? this.node.closedError,
      );
      p.catch(() => undefined);
      this.links.set(i, p);
    }
    return p;
  }

  private async request(
    i: number,
    type: number,
    fields: FrameFields,
    payload: Buffer | undefined,
    what: string,
    limitMs?: number,
  ): Promise<Frame> {
    if (this.closedError) throw this.closedError;
    const link = await this.connect(i);
    if (link.closed) throw link.closeError;
    const id = this.nextId++;
    const limit = limitMs ?? this.node.opts.timeoutMs + Math.max(2000, this.node.opts.timeoutMs / 2);
    return new Promise<Frame>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, link, sent: Date.now(), limitMs: limit, what });
      try {
        link.send(type, { ...fields, seq: id }, payload);
      } catch (err) {
        this.pending.delete(id);
        reject(err as Error);
        return;
      }
      this.watch();
    });
  }

  private watch(): void {
    if (this.timer) return;
    const every = Math.max(10, Math.min(1000, this.node.opts.timeoutMs / 4));
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const [id, p] of this.pending) {
        let err: DistributedError | undefined;
        if (now - Math.max(p.link.lastHeard, p.sent) > this.node.opts.timeoutMs) {
          err = new DistributedError(
            `${p.what}: no sign of life from ${p.link.name} for ${(this.node.opts.timeoutMs / 1000).toFixed(1)} s: it is stalled, hung or cut off`,
            p.link.name,
          );
        } else if (now - p.sent > p.limitMs) {
          err = new DistributedError(`${p.what}: no reply from ${p.link.name} within ${(p.limitMs / 1000).toFixed(1)} s`, p.link.name);
        }
        if (err) {
          this.pending.delete(id);
          p.reject(err);
        }
      }
      if (!this.pending.size) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }, every);
    this.timer.unref();
  }

  private onFrame(f: Frame): void {
    const p = this.pending.get(f.seq);
    if (!p) return;
    this.pending.delete(f.seq);
    if (f.type === FrameType.PS_ERROR) {
      let body: { message?: string; peer?: string } = {};
      try {
        body = JSON.parse(f.payload.toString('utf8'));
      } catch {
        body = { message: f.payload.toString('utf8') };
      }
      p.reject(new DistributedError(`${p.what} failed: ${body.message ?? 'error'}`, body.peer ?? p.link.name));
    } else p.resolve(f);
  }

  private onClose(err: DistributedError, link: Link): void {
    for (const [id, p] of this.pending) {
      if (p.link !== link) continue;
      this.pending.delete(id);
      p.reject(new DistributedError(`${p.what} failed: ${err.message}`, err.peer ?? link.name));
    }
  }

  private weights(f: Frame): PsWeights {
    return { version: f.total, values: payloadFloats(f.payload) };
  }

  /** Declares a model on ps `i` (every worker does, with the same config). */
  async configure(i: number, id: number, cfg: PsModelConfig): Promise<void> {
    await this.request(
      i,
      FrameType.PS_CONFIG,
      { aux: id },
      Buffer.from(JSON.stringify(cfg), 'utf8'),
      `configuring model '${cfg.name}' on ps:${i}`,
    );
  }

  /** Sets the initial values (first call wins; the chief's by convention). */
  async init(i: number, id: number, values: Float32Array): Promise<void> {
    await this.request(i, FrameType.PS_INIT, { aux: id }, floatBytes(values), `initializing ps:${i}`);
  }

  /** Sets the optimizer state the first init starts from (send before init). */
  async initState(i: number, id: number, state: PsOptimizerState): Promise<void> {
    await this.request(i, FrameType.PS_INIT_STATE, { aux: id }, encodePsState(state), `setting the optimizer state on ps:${i}`);
  }

  /** The optimizer state of the model's share on ps `i`, and the version it belongs to. */
  async state(i: number, id: number, size: number): Promise<PsOptimizerState & { version: number }> {
    const f = await this.request(i, FrameType.PS_STATE, { aux: id }, undefined, `reading the optimizer state from ps:${i}`);
    return { ...decodePsState(f.payload, size), version: f.total };
  }

  /** Pushes gradients computed on `baseVersion`; resolves to the weights after the update. */
  async pushPull(i: number, id: number, baseVersion: number, grads: Float32Array): Promise<PsWeights> {
    return this.weights(
      await this.request(i, FrameType.PS_PUSH, { aux: id, total: baseVersion }, floatBytes(grads), `pushing gradients to ps:${i}`),
    );
  }

  /** Weights once their version reaches `minVersion` (0: as soon as they are initialized). */
  async pull(i: number, id: number, minVersion = 0, limitMs?: number): Promise<PsWeights> {
    return this.weights(
      await this.request(i, FrameType.PS_PULL, { aux: id, total: minVersion }, undefined, `pulling weights from ps:${i}`, limitMs),
    );
  }

  async close(err: DistributedError): Promise<void> {
    this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all(
      [...this.links.values()].map((p) =>
        p.then(
          (l) => l.close(err.message),
          () => undefined,
        ),
      ),
    );
  }
}
