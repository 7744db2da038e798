/**
 * The CIFAR-10 example as users run it (examples/cifar10/train.ts), on a small generated
 * CIFAR-format set: it learns standalone and on a 2-worker cluster; a run killed after a
 * checkpoint resumes from the saved step with the saved weights and optimizer state and trains on
 * the batch the interrupted run would have taken next (standalone, and with 1 ps + InputMode.SPARK,
 * where the ps holds the optimizer state and Spark the data order); the exported model loads and
 * predicts; the log dir holds TensorBoard files, summary.json and a PNG plot.
 */
import { expect } from 'chai';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { MetricsEvent } from '../../lib/driver/cluster';
import { Checkpoints } from '../../lib/io/checkpoints';
import { generatedCifarSet } from '../../lib/io/cifar10';
import { resolveLocation } from '../../lib/io/dataset-fs';
import { writeCifarDataset } from '../../lib/io/dataset';
import { loadTfjs } from '../../lib/platform/tfjs';
import { loadModel } from '../../lib/io/model-files';
import { arrowPython, tempDir } from '../support/cifar-fixture';
import { predict } from '../../examples/cifar10/predict';
import { fingerprintHost } from '../../examples/cifar10/train';
import { InputMode } from '../../lib/protocol/input-mode';

const TRAIN = path.resolve(__dirname, '../../examples/cifar10/train.js');

interface Summary {
  steps: number;
  resumedFromStep: number;
  seconds: number;
  imagesPerSec: number;
  testAccuracy: number;
  testImages: number;
  exported?: string;
  nativeKernels?: string[];
}

/** One line of TFOS_CIFAR10_TRACE: a step's batch, or what a resumed run starts from. */
interface TraceLine {
  rank: number;
  step?: number;
  batch?: string;
  resumedFrom?: number;
  weights?: string;
  optimizer?: string;
}

function readTrace(file: string): TraceLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.endsWith('}'))
    .map((l) => JSON.parse(l) as TraceLine);
}

/** The batch fingerprint each step of rank 0 trained on. */
function batches(trace: TraceLine[]): Map<number, string> {
  return new Map(trace.filter((t) => t.rank === 0 && t.batch).map((t) => [t.step!, t.batch!]));
}

/** Runs the example standalone; resolves with its summary (the last stdout line). */
function standalone(
  args: string[],
  watch?: (child: ChildProcess) => void,
  env: Record<string, string> = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; summary?: Summary; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TRAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...env },
    });
    let out = '';
    const timer = watch ? setInterval(() => watch(child), 100) : undefined;
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(timer);
      const last = out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .pop();
      resolve({ code, signal, out, summary: last ? (JSON.parse(last) as Summary) : undefined });
    });
  });
}

describe('CIFAR-10 example (examples/cifar10/train.ts)', function () {
  this.timeout(900_000);
  let root: string;
  let data: string;
  const { tf } = loadTfjs();

  before(async () => {
    root = tempDir('tfos-cifar-example-');
    data = path.join(root, 'data');
    // 1,280 training images, 400 test images: enough for the nets to learn the generated classes.
    await writeCifarDataset(generatedCifarSet(1280, { testRecords: 400, seed: 11 }), resolveLocation(data), { parquet: false });
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('learns standalone (seed net): loss falls, test accuracy far above chance; logs, plot and model are written', async () => {
    const run = path.join(root, 'standalone');
    const r = await standalone([
      '--data',
      data,
      '--epochs',
      '2',
      '--batch',
      '32',
      '--model-dir',
      `${run}/model`,
      '--log-dir',
      `${run}/logs`,
      '--eval-every',
      '20',
    ]);
    expect(r.code, r.out).to.equal(0);
    const s = r.summary!;
    expect(s).to.include({ steps: 80, resumedFromStep: 0, testImages: 400 });
    expect(s.testAccuracy).to.be.above(0.3); // chance: 0.1
    // Standalone runs train with the same native kernels as trainers do.
    expect(s.nativeKernels).to.include.members(['relu-grad', 'adam', 'conv-grad', 'max-pool']);
    const logs = fs.readdirSync(`${run}/logs`);
    expect(logs.some((f) => f.startsWith('events.out.tfevents.'))).to.equal(true);
    expect(logs).to.include.members(['summary.json', 'training.png']);
    const summary = JSON.parse(fs.readFileSync(`${run}/logs/summary.json`, 'utf8'));
    for (const k of ['steps', 'resumedFromStep', 'seconds', 'imagesPerSec', 'testAccuracy', 'testImages'])
      expect(summary, k).to.have.property(k);
    const png = fs.readFileSync(`${run}/logs/training.png`);
    expect(png.subarray(1, 4).toString('ascii')).to.equal('PNG');
    // Loss falls: the run's loss history (kept in its checkpoints) ends well below where it began.
    const history = (await new Checkpoints(`${run}/model`).latest<{ history: Array<{ loss?: number }> }>())!.state.history.filter(
      (h) => h.loss !== undefined,
    );
    expect(history.length).to.be.at.least(4);
    expect(history[history.length - 1].loss!).to.be.below(history[0].loss! * 0.7);
    // The exported model loads and predicts (10 logits per image).
    const model = await loadModel(tf, `${run}/model`);
    const y = model.predict(tf.zeros([2, 24, 24, 3])) as TF.Tensor;
    expect(y.shape).to.deep.equal([2, 10]);
    // The predict example classifies test images with it.
    const p = await predict({ modelDir: `${run}/model`, data, count: 50 });
    expect(p.predictions).to.have.length(50);
    expect(p.accuracy).to.be.above(0.3);
  });

  it('checkpoint → kill → resume: continues from the saved step with the saved weights, optimizer state and data position', async () => {
    const run = path.join(root, 'resume');
    const killedTrace = path.join(root, 'resume-killed.jsonl');
    const resumedTrace = path.join(root, 'resume-resumed.jsonl');
    const common = [
      '--data',
      data,
      '--epochs',
      '3',
      '--batch',
      '32',
      '--model-dir',
      `${run}/model`,
      '--log-dir',
      `${run}/logs`,
      '--eval-every',
      '0',
      '--checkpoint-every',
      '20',
      '--test-rows',
      '100',
    ];
    // First run: killed (SIGKILL, no chance to clean up) once a checkpoint from step 20 on exists.
    const ckpts = new Checkpoints(`${run}/model`);
    // (It is killed after it has taken the batch that follows its newest checkpoint.)
    const killed = await standalone(
      common,
      (child) => {
        const newest = fs.existsSync(`${run}/model`)
          ? Math.max(0, ...fs.readdirSync(`${run}/model`).map((n) => Number(/^ckpt-(\d+)$/.exec(n)?.[1] ?? 0)))
          : 0;
        if (newest >= 20 && batches(readTrace(killedTrace)).has(newest)) child.kill('SIGKILL');
      },
      { TFOS_CIFAR10_TRACE: killedTrace },
    );
    expect(killed.signal, `the first run was not killed (exit ${killed.code}): ${killed.out.slice(-2000)}`).to.equal('SIGKILL');
    const saved = (await ckpts.latest())!;
    expect(saved.step % 20).to.equal(0);
    expect(saved.step).to.be.at.least(20);
    expect(saved.groups.optimizer?.length, 'Adam state in the checkpoint').to.be.above(1);

    // Resume with no steps left to take: the exported model is exactly the checkpoint's weights.
    const same = await standalone([...common, '--max-steps', String(saved.step)]);
    expect(same.code, same.out).to.equal(0);
    expect(same.summary).to.include({ steps: saved.step, resumedFromStep: saved.step });
    const model = await loadModel(tf, `${run}/model`);
    model.weights.forEach((w, i) =>
      expect(Array.from(w.read().dataSync()), w.originalName).to.deep.equal(Array.from(saved.groups.weights[i].values)),
    );

    // And it keeps going from there: from the checkpoint's weights and optimizer state, on the
    // batches (data order and augmentation) the killed run took after that checkpoint.
    const more = await standalone([...common, '--max-steps', String(saved.step + 5)], undefined, { TFOS_CIFAR10_TRACE: resumedTrace });
    expect(more.code, more.out).to.equal(0);
    expect(more.summary).to.include({ steps: saved.step + 5, resumedFromStep: saved.step });
    expect((await ckpts.latest())!.step).to.equal(saved.step + 5);
    const resumed = readTrace(resumedTrace);
    expect(resumed[0]).to.deep.equal({
      rank: 0,
      resumedFrom: saved.step,
      weights: fingerprintHost(saved.groups.weights),
      optimizer: fingerprintHost(saved.groups.optimizer!),
    });
    const before = batches(readTrace(killedTrace));
    const after = batches(resumed);
    expect([...after.keys()]).to.deep.equal([0, 1, 2, 3, 4].map((i) => saved.step + i));
    for (const [step, batch] of after) if (before.has(step)) expect(batch, `batch of step ${step}`).to.equal(before.get(step));
    expect(after.get(saved.step)).to.equal(before.get(saved.step));
  });

  it('1 ps + 1 worker, InputMode.SPARK: checkpoint → kill → resume restores the optimizer state on the ps and continues the data order', async () => {
    const python = arrowPython();
    if (!python) throw new Error("no Python with pyarrow (the Parquet writer): run 'node bin/tfos.js setup'");
    const run = path.join(root, 'ps-spark');
    const sparkData = path.join(run, 'data');
    // Spark reads the Parquet copy. 480 rows: an epoch is 30 steps of 16, so the run crosses epochs.
    await writeCifarDataset(generatedCifarSet(480, { testRecords: 50, seed: 12 }), resolveLocation(sparkData), {
      partitions: 3,
      batchRows: 40,
      parquet: { python },
    });
    const killedTrace = path.join(run, 'killed.jsonl');
    const resumedTrace = path.join(run, 'resumed.jsonl');
    const cluster = (args: string[], trace: string, onHandle?: (h: import('../../lib/driver/cluster').TFClusterHandle) => void) =>
      TFCluster.run({
        module: TRAIN,
        numExecutors: 2,
        numPs: 1,
        inputMode: InputMode.SPARK,
        data: `${sparkData}/train`,
        epochs: 4,
        args: ['--data', sparkData, '--batch', '16', '--model-dir', `${run}/model`, '--eval-every', '0', '--test-rows', '50', ...args],
        via: { local: {} },
        env: { TF_CPP_MIN_LOG_LEVEL: '2', TFOS_CIFAR10_TRACE: trace },
        reservationTimeout: 180,
        onHandle,
      });
    // First run: the chief (the only worker) is SIGKILLed once it has taken the batch after ckpt-40.
    let killedPid = 0;
    const first = await cluster(['--checkpoint-every', '40'], killedTrace, (h) => {
      const timer = setInterval(() => {
        const chief = [...h.nodes.values()].find((n) => n.job === 'chief');
        if (chief && !killedPid && batches(readTrace(killedTrace)).has(41)) {
          killedPid = chief.pid;
          process.kill(chief.pid, 'SIGKILL');
        }
        if (h.state === 'failed' || h.state === 'finished') clearInterval(timer);
      }, 50);
    });
    const failure = await first.shutdown({ timeout: 300 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(killedPid, 'the chief was killed').to.be.above(0);
    expect(failure?.message).to.contain('chief:0');
    const saved = (await new Checkpoints(`${run}/model`).latest())!;
    expect(saved.step).to.equal(40);
    // The ps node's Adam state came into the checkpoint: the step count and both moments of every weight.
    const iter = saved.groups.optimizer!.find((t) => t.name === 'iter')!;
    expect(iter.values[0]).to.equal(40);
    expect(saved.groups.optimizer!.length).to.equal(1 + 2 * 10);

    // Resumed for two steps: the ps starts from the checkpoint's weights and Adam state (read back
    // from it), and Spark's stream continues where the killed run was (the second epoch's steps 40, 41).
    const second = await cluster(['--max-steps', '42', '--checkpoint-every', '1000'], resumedTrace);
    const results = [...(await second.shutdown({ timeout: 300 })).values()] as Array<Summary | null>;
    expect(results.find((r) => r && 'testAccuracy' in r)).to.include({ steps: 42, resumedFromStep: 40 });
    const resumed = readTrace(resumedTrace);
    expect(resumed[0]).to.deep.equal({
      rank: 0,
      resumedFrom: 40,
      weights: fingerprintHost(saved.groups.weights),
      optimizer: fingerprintHost(saved.groups.optimizer!),
    });
    const before = batches(readTrace(killedTrace));
    expect(batches(resumed)).to.deep.equal(new Map([40, 41].map((s) => [s, before.get(s)])));
    // (Batches differ from step to step: the check above is not vacuous.)
    expect(before.get(40)).to.not.equal(before.get(41));
  });

  it('learns on a 2-worker cluster with an evaluator node (TFCluster.run, embedded local Spark); metrics reach the driver', async () => {
    const run = path.join(root, 'cluster');
    const metrics: MetricsEvent[] = [];
    const handle = await TFCluster.run({
      module: TRAIN,
      numExecutors: 3,
      evalNode: true,
      args: [
        '--data',
        data,
        '--model',
        'fast',
        '--epochs',
        '2',
        '--batch',
        '32',
        '--lr',
        '0.05',
        '--model-dir',
        `${run}/model`,
        '--log-dir',
        `${run}/logs`,
        '--checkpoint-every',
        '20',
      ],
      via: { local: {} },
      env: { TF_CPP_MIN_LOG_LEVEL: '2' },
      onHandle: (h) => h.on('metrics', (m: MetricsEvent) => metrics.push(m)),
    });
    const results = [...(await handle.shutdown({ timeout: 600 })).values()] as Array<Summary & { rank?: number; evaluated?: number }>;
    const chief = results.find((r) => 'testAccuracy' in r)!;
    expect(chief).to.include({ steps: 80, resumedFromStep: 0, testImages: 400 });
    expect(chief.testAccuracy).to.be.above(0.3);
    expect(results.find((r) => r.rank === 1)).to.deep.include({ steps: 80 });
    // The chief drives the progress bar; the evaluator reports the accuracy of each checkpoint it evaluated.
    const fromChief = metrics.filter((m) => m.label === 'chief:0');
    expect(fromChief.length).to.be.above(0);
    expect(fromChief[fromChief.length - 1].totalSteps).to.equal(80);
    const evaluator = results.find((r) => r && typeof r.evaluated === 'number')!;
    expect(evaluator.evaluated).to.be.at.least(1);
    const fromEvaluator = metrics.filter((m) => m.label === 'evaluator:0');
    expect(fromEvaluator.length).to.equal(evaluator.evaluated);
    for (const m of fromEvaluator) (expect(m.step % 20).to.equal(0), expect(m.testAccuracy).to.be.within(0, 1));
    expect(fs.readdirSync(`${run}/logs/eval`).some((f) => f.startsWith('events.out.tfevents.'))).to.equal(true);
    const model = await loadModel(tf, `${run}/model`);
    expect((model.predict(tf.zeros([1, 32, 32, 3])) as TF.Tensor).shape).to.deep.equal([1, 10]);
  });
});
