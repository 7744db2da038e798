/**
 * CIFAR-10 on a tfjs-on-spark cluster: the seed experiment's CNN (`--model seed`, Adam) or a
 * faster modern net (`--model fast`), synchronous data-parallel training (all-reduce of gradients,
 * or parameter servers when the cluster has ps nodes), in either input mode.
 *
 *   tfos run dist/examples/cifar10/train.js --cluster-size 2 -- --data DIR [options]
 *   node dist/examples/cifar10/train.js --data DIR [options]          (standalone: no Spark)
 *
 * Options (every one optional but --data):
 *   --data DIR             dataset written by `tfos data cifar10` (DIR/train, DIR/test; local or hdfs://)
 *   --model seed|fast      network (default seed)
 *   --epochs E             passes over the training set (default 1)
 *   --max-steps N          stop at global step N (default: E epochs)
 *   --batch B              global batch size, split over the workers (default 128)
 *   --lr LR                learning rate (peak of the schedule; default 0.001 seed, 0.1 fast)
 *   --model-dir DIR        checkpoints (DIR/ckpt-<step>) and the exported model (DIR/model.json);
 *                          a run with the same DIR resumes from its newest complete checkpoint
 *   --log-dir DIR          TensorBoard event files, summary.json, training.png
 *   --checkpoint-every K   steps between checkpoints (default 500; always one at the end)
 *   --keep-checkpoints N   checkpoints kept (default 3)
 *   --eval-every K         steps between test-set evaluations (default: once per epoch; 0: only at the end)
 *   --test-rows N          evaluate on the first N test images only (default: all 10,000)
 *   --seed S               seed of the data order and augmentation (default 1)
 *
 * Roles: chief and workers train; the chief writes checkpoints, event files, the summary and the
 * plot, and exports the model; an evaluator node (tfos run --eval-node) evaluates each new
 * checkpoint while the workers train; ps nodes serve parameters.
 */
import type * as TF from '@tensorflow/tfjs';
import type { Table } from 'apache-arrow';
import { createHash } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { Checkpoint, Checkpoints } from '../../lib/io/checkpoints';
import { imagesToFloat32, labelsToInt32 } from '../../lib/io/arrow-tensors';
import { loadTfjs } from '../../lib/platform/tfjs';
import { registerNativeKernels } from '../../lib/tfjs-native';
import { graphStepsEnabled, tracedGradients } from '../../lib/tfjs-native/traced-function';
import { resolveLocation, posixJoin } from '../../lib/io/dataset-fs';
import { OptimizerState, restoreTrainingState, saveModel, trainingState } from '../../lib/io/model-files';
import { SummaryWriter } from '../../lib/io/tfevents';
import { HistoryPoint, renderTrainingPlot } from '../../lib/io/training-plot';
import type { TrainingMetrics } from '../../lib/protocol/control';
import { DataFeed, stepsPerEpoch } from '../../lib/node/data-feed';
import type { ClusterServer } from '../../lib/node/cluster-server';
import type { DistributedOptimizer } from '../../lib/node/distributed/optimizer';
import { runtimeOf, TFNodeContext } from '../../lib/node/runtime';
import type { SparkFeed } from '../../lib/node/spark-feed';
import { TFNode } from '../../lib/node/tf-node';
import { preprocess, rng } from './augment';
import { ModelRecipe, recipe } from './models';

type Tfjs = typeof TF;

export interface TrainOptions {
  data: string;
  model: ModelRecipe;
  epochs: number;
  maxSteps: number;
  batch: number;
  lr: number;
  modelDir?: string;
  logDir?: string;
  checkpointEvery: number;
  keepCheckpoints: number;
  /** 0: only at the end; undefined: once per epoch. */
  evalEvery?: number;
  testRows: number;
  seed: number;
}

const CIFAR_TEST_ROWS = 10_000;

export function parseTrainArgs(args: unknown): TrainOptions {
  const list = Array.isArray(args) ? args.map(String) : [];
  const o: Record<string, string> = {};
  const known = [
    'data',
    'model',
    'epochs',
    'max-steps',
    'batch',
    'lr',
    'model-dir',
    'log-dir',
    'checkpoint-every',
    'keep-checkpoints',
    'eval-every',
    'test-rows',
    'seed',
  ];
  for (let i = 0; i < list.length; i += 2) {
    const k = list[i].replace(/^--/, '');
    if (!list[i].startsWith('--') || !known.includes(k))
      throw new Error(`cifar10 train: unknown argument '${list[i]}' (known: ${known.map((x) => `--${x}`).join(' ')})`);
    if (list[i + 1] === undefined) throw new Error(`cifar10 train: ${list[i]} needs a value`);
    o[k] = list[i + 1];
  }
  const num = (k: string, fallback: number, opts: { int?: boolean; min?: number } = {}): number => {
    if (o[k] === undefined) return fallback;
    const n = Number(o[k]);
    if (!Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || n < (opts.min ?? 0)) {
      throw new Error(`cifar10 train: --${k} must be ${opts.int ? 'an integer' : 'a number'} >= ${opts.min ?? 0}, got '${o[k]}'`);
    }
    return n;
  };
  if (!o.data) throw new Error('cifar10 train: --data DIR (a dataset written by `tfos data cifar10`) is required');
  const model = recipe(o.model ?? 'seed');
  return {
    data: o.data.replace(/\/+$/, ''),
    model,
    epochs: num('epochs', 1, { int: true, min: 1 }),
    maxSteps: o['max-steps'] === undefined ? Infinity : num('max-steps', 0, { int: true, min: 1 }),
    batch: num('batch', 128, { int: true, min: 1 }),
    lr: o.lr === undefined ? model.lr : num('lr', 0, { min: 0 }),
    modelDir: o['model-dir'],
    logDir: o['log-dir'],
    checkpointEvery: num('checkpoint-every', 500, { int: true, min: 1 }),
    keepCheckpoints: num('keep-checkpoints', 3, { int: true, min: 1 }),
    evalEvery: o['eval-every'] === undefined ? undefined : num('eval-every', 0, { int: true, min: 0 }),
    testRows: num('test-rows', CIFAR_TEST_ROWS, { int: true, min: 1 }),
    seed: num('seed', 1, { int: true, min: 0 }),
  };
}

/** What the training loop needs from its surroundings: a cluster, or this process alone. */
interface Group {
  rank: number;
  size: number;
  /** Sum across the workers, in place. */
  sum(buf: Float32Array): Promise<Float32Array>;
  /**
   * One step: gradients of lossOf(...inputs), combined across the workers, applied. lossOf is the
   * same function every step, so the step can run as one TensorFlow graph (traced-function.ts).
   */
  minimize(lossOf: (...inputs: TF.Tensor[]) => TF.Scalar, inputs: TF.Tensor[]): Promise<TF.Scalar>;
  /** Work only this worker does (checkpoints, export): peers wait without timing out. */
  whileBusy<T>(work: () => Promise<T>): Promise<T>;
  /** The next training table (SPARK mode), or a dataset shard. */
  readsDataset: boolean;
  nextSparkBatch?(n: number): Promise<Table | null>;
  report(m: TrainingMetrics): void;
  /** Holder of the optimizer state that checkpoints save and restore (in ps mode the ps nodes hold it). */
  checkpointOptimizer?: OptimizerState;
}

/** Loss and accuracy on (a shard of) the test split; summed over the group. */
async function evaluate(
  tf: Tfjs,
  model: TF.LayersModel,
  o: TrainOptions,
  path: string,
  g: Group,
  opts: { batch?: number; stop?: () => boolean } = {},
): Promise<{ accuracy: number; loss: number; images: number }> {
  const feed = await DataFeed.fromDataset(path, { shard: g.rank, numShards: g.size, epochs: 1 });
  const batch = opts.batch ?? 250;
  const limit = Math.ceil(Math.min(o.testRows, feed.info!.globalRows) / g.size);
  let correct = 0;
  let lossSum = 0;
  let seen = 0;
  try {
    for (let t = await feed.nextBatch(batch); t && seen < limit && !opts.stop?.(); t = await feed.nextBatch(batch)) {
      const n = Math.min(t.numRows, limit - seen);
      const raw = imagesToFloat32(t);
      const labels = labelsToInt32(t).subarray(0, n);
      const S = o.model.imageSize;
      const [hits, loss] = tf.tidy(() => {
        const views = [false, ...(o.model.flipTta ? [true] : [])].map((mirror) =>
          tf.tensor4d(preprocess(raw, n, o.model, undefined, mirror), [n, S, S, 3]),
        );
        const logits = views
          .map((x) => model.predict(x) as TF.Tensor2D)
          .reduce((a, b) => a.add(b))
          .div(views.length) as TF.Tensor2D;
        const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
        return [
          logits.argMax(-1).equal(tf.tensor1d(labels, 'int32')).sum(),
          tf.losses.softmaxCrossEntropy(ys, logits, undefined, undefined, tf.Reduction.SUM),
        ];
      });
      correct += (await hits.data())[0];
      lossSum += (await loss.data())[0];
      tf.dispose([hits, loss]);
      seen += n;
    }
  } finally {
    await feed.terminate();
  }
  const [c, l, s] = await g.sum(Float32Array.of(correct, lossSum, seen));
  return { accuracy: s ? c / s : 0, loss: s ? l / s : 0, images: s };
}

/**
 * TFOS_CIFAR10_TRACE=FILE: every worker appends one JSON line per step to FILE, the fingerprint of
 * the batch it trains on (after augmentation), and on resume one line with the fingerprints of
 * the weights and optimizer state it starts from — how the tests check that a resumed run
 * continues exactly where the interrupted one was.
 */
function tracer(): ((line: object) => void) | undefined {
  const file = process.env.TFOS_CIFAR10_TRACE;
  if (!file) return undefined;
  return (line) => nodeFs.appendFileSync(file, JSON.stringify(line) + '\n');
}

export function fingerprint(...arrays: Array<Float32Array | Int32Array>): string {
  const h = createHash('sha256');
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex').slice(0, 16);
}

export function fingerprintHost(list: Array<{ values: Float32Array | Int32Array }>): string {
  return fingerprint(...list.map((x) => x.values));
}

/** Learning rate at `step` of `total`: constant (seed), or one-cycle (fast: linear up for 20%, then down to 0). */
function learningRate(o: TrainOptions, step: number, total: number): number {
  if (o.model.name === 'seed') return o.lr;
  const warm = Math.max(1, Math.floor(total * 0.2));
  if (step < warm) return (o.lr * (step + 1)) / warm;
  return Math.max(0, (o.lr * (total - step)) / Math.max(1, total - warm));
}

function setLearningRate(opt: TF.Optimizer, lr: number): void {
  const o = opt as unknown as { setLearningRate?: (lr: number) => void; learningRate: number };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

interface RunState {
  step: number;
  seconds: number;
  images: number;
  history: HistoryPoint[];
  seed: number;
  model: string;
  globalBatch: number;
  workers: number;
}

export interface TrainSummary {
  steps: number;
  resumedFromStep: number;
  /** Wall-clock seconds of this run's training loop (evaluations and checkpoints included). */
  seconds: number;
  /** Training images per second of this run, all workers together (evaluation and checkpoint time excluded). */
  imagesPerSec: number;
  /** The chief's process CPU time per image it trained on (ms; evaluation and checkpoints excluded): a step's cost, whatever the load. */
  cpuMsPerImage: number;
  testAccuracy: number;
  testImages: number;
  testLoss: number;
  model: string;
  workers: number;
  globalBatch: number;
  epochs: number;
  /** Every evaluation of the run (time to a given accuracy). */
  evaluations: Array<{ step: number; seconds: number; images: number; testAccuracy: number }>;
  modelDir?: string;
  logDir?: string;
  plot?: string;
  exported?: string;
  /** Standalone runs: the native kernel levers active in this process (lib/tfjs-native). */
  nativeKernels?: string[];
}

/** The training loop shared by cluster workers and standalone runs. */
async function trainLoop(
  tf: Tfjs,
  o: TrainOptions,
  g: Group,
  make: { model: TF.LayersModel; optimizer: TF.Optimizer; init(): Promise<void> },
): Promise<TrainSummary | { steps: number; rank: number }> {
  const { model, optimizer } = make;
  const chief = g.rank === 0;
  const local = Math.max(1, Math.floor(o.batch / g.size));
  const globalBatch = local * g.size;
  const log = (s: string) => console.log(s);

  // Where we start: the newest complete checkpoint (the chief's choice, so every worker agrees).
  const ckpts = o.modelDir
    ? new Checkpoints(o.modelDir, { keep: o.keepCheckpoints, onSkip: (uri, why) => log(`skipping checkpoint ${uri}: ${why}`) })
    : undefined;
  let cp: Checkpoint<RunState> | undefined = ckpts ? await ckpts.latest<RunState>() : undefined;
  const [chosen] = await g.sum(Float32Array.of(chief && cp ? cp.step + 1 : 0));
  if (chosen === 0) cp = undefined;
  else if (!cp || cp.step !== chosen - 1) cp = await ckpts!.read<RunState>(chosen - 1);
  if (cp) {
    await restoreTrainingState(tf, model, cp, g.checkpointOptimizer);
    if (cp.state.globalBatch !== globalBatch || cp.state.workers !== g.size) {
      log(
        `note: ${cp.uri} was written with ${cp.state.workers} workers × ${cp.state.globalBatch / cp.state.workers}; this run has ${g.size} × ${local}: the data order differs from an uninterrupted run`,
      );
    }
  }
  await make.init();
  const resumedFromStep = cp?.step ?? 0;
  const trace = tracer();
  if (trace && cp) {
    // What the run starts from once every worker is initialized (in ps mode: read back from the ps nodes).
    const opt = g.checkpointOptimizer ? await trainingState(model, g.checkpointOptimizer) : { weights: [] };
    trace({ rank: g.rank, resumedFrom: cp.step, weights: fingerprintHost(opt.weights), optimizer: fingerprintHost(opt.optimizer ?? []) });
  }
  const history: HistoryPoint[] = cp?.state.history ?? [];
  let step = resumedFromStep;
  let imagesSeen = cp?.state.images ?? 0;
  const priorSeconds = cp?.state.seconds ?? 0;
  if (chief && cp) log(`resumed from ${cp.uri} (step ${cp.step})`);

  const trainPath = `${o.data}/train`;
  const testPath = `${o.data}/test`;
  let spe: number;
  if (g.readsDataset) {
    const probe = await DataFeed.fromDataset(trainPath, { shard: g.rank, numShards: g.size, epochs: 1 });
    spe = stepsPerEpoch(probe.info!.globalRows, g.size, local);
    await probe.terminate();
    if (spe < 1) throw new Error(`${trainPath} has too few rows for ${g.size} workers × batch ${local}`);
  } else spe = Math.max(1, Math.floor(50_000 / globalBatch));
  const total = Math.min(o.maxSteps, o.epochs * spe);
  const evalEvery = o.evalEvery ?? spe;

  const writer = chief && o.logDir ? new SummaryWriter(o.logDir) : undefined;
  const started = Date.now();
  const elapsed = () => priorSeconds + (Date.now() - started) / 1000;
  let lastTest: { accuracy: number; loss: number; images: number } | undefined;
  let window = { at: Date.now(), images: 0 };
  let rate = 0;
  // Mean training loss over the workers, accumulated between event-file writes (every 10 steps).
  let lossAcc = { sum: 0, n: 0 };
  let shownLoss: number | undefined;
  let lastReport = 0;
  const report = (extra: Partial<TrainingMetrics> = {}) =>
    g.report({
      step,
      totalSteps: total,
      epoch: step / spe,
      epochs: o.epochs,
      images: imagesSeen,
      imagesPerSec: rate,
      loss: shownLoss ?? (lossAcc.n ? lossAcc.sum / lossAcc.n : undefined),
      learningRate: learningRate(o, Math.min(step, total - 1), total),
      testAccuracy: lastTest?.accuracy,
      testImages: lastTest?.images,
      seconds: elapsed(),
      resumedFromStep,
      ...extra,
    });

  // Time spent away from training steps (evaluations, checkpoints): not counted in imagesPerSec.
  let pausedMs = 0;
  // CPU time of this process in the training steps (what a step costs whatever else the machine runs).
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const cpuStart = cpuNow();
  let pausedCpu = 0;
  const evaluations: TrainSummary['evaluations'] = [];
  const runEval = async () => {
    if (chief) report({ phase: 'evaluating' });
    const t0 = Date.now();
    const c0 = cpuNow();
    lastTest = await evaluate(tf, model, o, testPath, g);
    pausedMs += Date.now() - t0;
    pausedCpu += cpuNow() - c0;
    evaluations.push({ step, seconds: +elapsed().toFixed(2), images: imagesSeen, testAccuracy: lastTest.accuracy });
    if (chief) {
      history.push({ step, seconds: elapsed(), images: imagesSeen, testAccuracy: lastTest.accuracy });
      writer?.scalars(step, { test_accuracy: lastTest.accuracy, test_loss: lastTest.loss });
      log(`step ${step}: test accuracy ${lastTest.accuracy.toFixed(4)} on ${lastTest.images} images`);
      report();
    }
  };
  const save = async () => {
    if (!ckpts || !chief) return;
    const state: RunState = {
      step,
      seconds: elapsed(),
      images: imagesSeen,
      history,
      seed: o.seed,
      model: o.model.name,
      globalBatch,
      workers: g.size,
    };
    const t0 = Date.now();
    const c0 = cpuNow();
    await g.whileBusy(async () => ckpts.save(step, await trainingState(model, g.checkpointOptimizer), state));
    pausedMs += Date.now() - t0;
    pausedCpu += cpuNow() - c0;
  };

  // The data: dataset shards per epoch (seeded order, so a resumed run skips to its place), or
  // Spark's feed, which streams each worker the same contiguous share in the same order every
  // epoch (epochs back to back), so a resumed run skips the rows of the steps already taken.
  let feed: DataFeed | undefined;
  let feedEpoch = -1;
  let sparkSkip = resumedFromStep * local;
  const nextTable = async (): Promise<Table | null> => {
    if (!g.readsDataset) {
      for (; sparkSkip > 0;) {
        const skipped = await g.nextSparkBatch!(Math.min(sparkSkip, 4096));
        if (!skipped) return null;
        sparkSkip -= skipped.numRows;
      }
      return g.nextSparkBatch!(local);
    }
    const epoch = Math.floor(step / spe);
    if (epoch !== feedEpoch) {
      await feed?.terminate();
      feed = await DataFeed.fromDataset(trainPath, {
        shard: g.rank,
        numShards: g.size,
        epochs: 1,
        shuffle: true,
        seed: o.seed * 1000 + epoch,
      });
      feedEpoch = epoch;
      for (let skip = step - epoch * spe; skip > 0; skip--) await feed.nextBatch(local);
    }
    return feed!.nextBatch(local);
  };

  let prevLoss = 0;
  const S = o.model.imageSize;
  // The loss of one batch, a function of its tensors only (and the model's variables).
  const lossOf = (xs: TF.Tensor, ys: TF.Tensor) =>
    tf.tidy(() => {
      const logits = model.apply(xs, { training: true }) as TF.Tensor;
      const ce = tf.losses.softmaxCrossEntropy(ys, logits, undefined, o.model.labelSmoothing || undefined);
      const reg = model.calculateLosses();
      return (reg.length ? tf.addN([ce, ...reg]) : ce) as TF.Scalar;
    });
  try {
    while (step < total) {
      const table = await nextTable();
      const has = table && table.numRows > 0 ? 1 : 0;
      // One small all-reduce per step: is everyone ready (synchronous steps stop together), and the previous step's mean loss.
      const [ready, lossSum] = await g.sum(Float32Array.of(has, prevLoss));
      if (step > resumedFromStep) lossAcc = { sum: lossAcc.sum + lossSum / g.size, n: lossAcc.n + 1 };
      if (ready < g.size) break;
      const n = table!.numRows;
      const random = rng(o.seed, g.rank, step);
      const xsData = preprocess(imagesToFloat32(table!), n, o.model, random);
      const labels = labelsToInt32(table!);
      trace?.({ rank: g.rank, step, batch: fingerprint(xsData, labels) });
      const lr = learningRate(o, step, total);
      setLearningRate(optimizer, lr);
      const xs = tf.tensor4d(xsData, [n, S, S, 3]);
      const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10));
      const loss = await g.minimize(lossOf, [xs, ys]);
      prevLoss = (await loss.data())[0];
      tf.dispose([xs, ys, loss]);
      step++;
      imagesSeen += globalBatch;
      window.images += globalBatch;

      if (chief) {
        const now = Date.now();
        if (now - window.at >= 2000) {
          rate = (window.images * 1000) / (now - window.at);
          window = { at: now, images: 0 };
        }
        if (step % 10 === 0 && lossAcc.n) {
          shownLoss = lossAcc.sum / lossAcc.n;
          lossAcc = { sum: 0, n: 0 };
          writer?.scalars(step, { loss: shownLoss, learning_rate: lr, images_per_sec: rate || undefined });
          history.push({ step, seconds: elapsed(), images: imagesSeen, loss: shownLoss });
        }
        if (now - lastReport >= 1000) {
          lastReport = now;
          report();
        }
      }
      if (evalEvery > 0 && step % evalEvery === 0 && step < total) await runEval();
      if (step % o.checkpointEvery === 0 && step < total) await save();
    }
  } finally {
    await feed?.terminate();
  }

  const trainSeconds = (Date.now() - started - pausedMs) / 1000;
  const trainCpu = cpuNow() - cpuStart - pausedCpu;
  await runEval();
  const seconds = (Date.now() - started) / 1000;
  const stepsRun = step - resumedFromStep;
  if (!chief) return { steps: step, rank: g.rank };

  const summary: TrainSummary = {
    steps: step,
    resumedFromStep,
    seconds: +seconds.toFixed(2),
    imagesPerSec: trainSeconds > 0 ? +((stepsRun * globalBatch) / trainSeconds).toFixed(1) : 0,
    cpuMsPerImage: stepsRun > 0 ? +((trainCpu * 1000) / (stepsRun * local)).toFixed(2) : 0,
    testAccuracy: lastTest!.accuracy,
    testImages: lastTest!.images,
    testLoss: lastTest!.loss,
    model: o.model.name,
    workers: g.size,
    globalBatch,
    epochs: step / spe,
    evaluations,
  };
  // Everyone else is done with collectives; the chief's closing work can take its time.
  if (ckpts) {
    await save();
    summary.modelDir = ckpts.uri;
    summary.exported = await saveModel(model, o.modelDir!);
    log(`model: ${summary.exported}`);
  }
  if (o.logDir && writer) {
    await writer.close();
    const { fs, path } = resolveLocation(o.logDir);
    await fs.writeFile(posixJoin(path, 'summary.json'), Buffer.from(JSON.stringify(summary, null, 2) + '\n'));
    const png = await renderTrainingPlot(history, `CIFAR-10 ${o.model.name} net, ${g.size} worker(s) × ${local}`);
    await fs.writeFile(posixJoin(path, 'training.png'), png);
    summary.logDir = fs.uri(path);
    summary.plot = fs.uri(posixJoin(path, 'training.png'));
    log(`TensorBoard logs: ${summary.logDir} (tensorboard --logdir ${o.logDir})`);
    log(`plot: ${summary.plot}`);
  }
  log(
    `test accuracy ${summary.testAccuracy.toFixed(4)} on ${summary.testImages} test images after ${summary.steps} steps (${summary.seconds.toFixed(1)} s, ${summary.imagesPerSec.toFixed(0)} images/s)`,
  );
  return summary;
}

/** The evaluator role: evaluates every new checkpoint in --model-dir until the cluster shuts down. */
async function evaluatorLoop(tf: Tfjs, o: TrainOptions, ctx: TFNodeContext, server: ClusterServer): Promise<unknown> {
  if (!o.modelDir) return server.join();
  let stopped = false;
  // The shutdown signal itself (server.join() resolves only after closing the server).
  runtimeOf(ctx).shutdown.then(
    () => (stopped = true),
    () => undefined,
  );
  const done = server.join();
  const ckpts = new Checkpoints(o.modelDir, { keep: o.keepCheckpoints });
  const writer = o.logDir ? new SummaryWriter(`${o.logDir.replace(/\/+$/, '')}/eval`) : undefined;
  const model = o.model.build(tf);
  const single: Group = {
    rank: 0,
    size: 1,
    sum: async (b) => b,
    minimize: () => Promise.reject(new Error('not training')),
    whileBusy: (w) => w(),
    readsDataset: true,
    report: () => undefined,
  };
  let seen = -1;
  let evaluated = 0;
  while (!stopped) {
    const cp = await ckpts.latest<RunState>().catch(() => undefined);
    if (cp && cp.step !== seen) {
      seen = cp.step;
      await restoreTrainingState(tf, model, cp);
      // Small batches, checking for the end of the run between them: the driver stops the
      // evaluator once the workers are done, and an evaluation cut short is simply dropped.
      const r = await evaluate(tf, model, o, `${o.data}/test`, single, { batch: 50, stop: () => stopped });
      if (stopped) break;
      evaluated++;
      writer?.scalars(cp.step, { test_accuracy: r.accuracy, test_loss: r.loss });
      await writer?.flush();
      TFNode.reportMetrics(ctx, { step: cp.step, testAccuracy: r.accuracy, testImages: r.images });
      console.log(`evaluator: checkpoint step ${cp.step}: test accuracy ${r.accuracy.toFixed(4)} on ${r.images} images`);
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, 3000).unref())]);
  }
  await writer?.close();
  return { evaluated };
}

/** The function each TF node runs (TFCluster.run / tfos run). */
export default async function train(args: unknown, ctx: TFNodeContext): Promise<unknown> {
  const parsed = parseTrainArgs(args);
  const o: TrainOptions = {
    ...parsed,
    data: ctx.absolutePath(parsed.data),
    modelDir: parsed.modelDir && ctx.absolutePath(parsed.modelDir),
    logDir: parsed.logDir && ctx.absolutePath(parsed.logDir),
  };
  const { tf } = loadTfjs();
  const { server } = await TFNode.startClusterServer(ctx);
  if (ctx.jobName === 'ps') return server.join();
  if (ctx.jobName === 'evaluator') return evaluatorLoop(tf, o, ctx, server);

  const model = o.model.build(tf);
  const optimizer = o.model.optimizer(tf, o.lr);
  const mode = ctx.clusterSpec.ps.length ? 'ps' : 'allreduce';
  const dist: DistributedOptimizer = TFNode.distributedOptimizer(server, optimizer, { mode });
  const sparkFeed = ctx.inputMode === 'spark' ? ((await TFNode.dataFeed(ctx)) as SparkFeed) : undefined;
  // An evaluator node evaluates checkpoints as they appear; the workers then only evaluate at the end.
  const hasEvaluator = (ctx.clusterSpec.evaluator?.length ?? 0) > 0 && !!o.modelDir;
  const group: Group = {
    rank: server.rank,
    size: server.size,
    sum: (b) => server.allReduce(b, 'sum'),
    minimize: async (lossOf, inputs) => (await dist.minimizeOn(lossOf, inputs, true))!,
    whileBusy: (w) => server.whileBusy(w),
    readsDataset: !sparkFeed,
    nextSparkBatch: sparkFeed ? (n) => sparkFeed.nextBatch(n) : undefined,
    report: (m) => TFNode.reportMetrics(ctx, m),
    checkpointOptimizer: dist,
  };
  try {
    return await trainLoop(tf, hasEvaluator ? { ...o, evalEvery: 0 } : o, group, { model, optimizer, init: () => dist.init(model) });
  } finally {
    if (sparkFeed) await sparkFeed.terminate();
  }
}

/** Standalone: the same training in this process alone (no Spark, no cluster). */
export async function trainStandalone(args: string[], report: (m: TrainingMetrics) => void = () => undefined): Promise<TrainSummary> {
  const o = parseTrainArgs(args);
  const { tf } = loadTfjs();
  // Trainers and the package's entry register tfjs-on-spark's native kernels; a standalone run
  // loads tfjs itself, so it registers them here (without them a step took 1.8× as long).
  const nativeKernels = registerNativeKernels(tf);
  const model = o.model.build(tf);
  const optimizer = o.model.optimizer(tf, o.lr);
  // As a cluster's trainers do (DistributedOptimizer.minimizeOn): the step as one TensorFlow graph.
  const group: Group = {
    rank: 0,
    size: 1,
    sum: async (b) => b,
    minimize: async (lossOf, inputs) => {
      if (!graphStepsEnabled()) return optimizer.minimize(() => lossOf(...inputs), true)!;
      const gradientsOf = tracedGradients(tf, lossOf, (m) => console.error(`training step: ${m}`));
      const { value, grads } = gradientsOf(
        inputs,
        model.trainableWeights.map((w) => w.read() as TF.Variable),
      );
      optimizer.applyGradients(grads);
      tf.dispose(Object.values(grads));
      return value;
    },
    whileBusy: (w) => w(),
    readsDataset: true,
    report,
    checkpointOptimizer: optimizer,
  };
  const summary = (await trainLoop(tf, o, group, { model, optimizer, init: async () => undefined })) as TrainSummary;
  return { ...summary, nativeKernels };
}

if (require.main === module) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { TrainingProgress } = require('../../lib/driver/training-progress') as typeof import('../../lib/driver/training-progress');
  const progress = new TrainingProgress();
  trainStandalone(process.argv.slice(2), (m) => progress.update(m)).then(
    (s) => {
      progress.finish();
      console.log(JSON.stringify(s));
      process.exit(0);
    },
    (err: Error) => {
      progress.finish();
      console.error(err.stack ?? err.message);
      process.exit(1);
    },
  );
}
