/**
 * The CIFAR-10 example as users run it (examples/cifar10/train.ts), on a small generated
 * CIFAR-format set: it learns standalone and on a 2-worker cluster; a run killed after a
 * checkpoint resumes from the saved step with the saved weights; the exported model loads and
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
import { tempDir } from '../support/cifar-fixture';
import { predict } from '../../examples/cifar10/predict';

const TRAIN = path.resolve(__dirname, '../../examples/cifar10/train.js');

interface Summary {
  steps: number;
  resumedFromStep: number;
  seconds: number;
  imagesPerSec: number;
  testAccuracy: number;
  testImages: number;
  exported?: string;
}

/** Runs the example standalone; resolves with its summary (the last stdout line). */
function standalone(
  args: string[],
  watch?: (child: ChildProcess) => void,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; summary?: Summary; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TRAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
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

  it('checkpoint → kill → resume: continues from the saved step with the saved weights', async () => {
    const run = path.join(root, 'resume');
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
      '10',
      '--test-rows',
      '100',
    ];
    // First run: killed (SIGKILL, no chance to clean up) once a checkpoint beyond step 10 exists.
    const ckpts = new Checkpoints(`${run}/model`);
    const killed = await standalone(common, (child) => {
      if (fs.existsSync(`${run}/model`) && fs.readdirSync(`${run}/model`).some((n) => /^ckpt-0+(2\d|3\d)$/.test(n))) child.kill('SIGKILL');
    });
    expect(killed.signal, `the first run was not killed (exit ${killed.code}): ${killed.out.slice(-2000)}`).to.equal('SIGKILL');
    const saved = (await ckpts.latest())!;
    expect(saved.step % 10).to.equal(0);
    expect(saved.step).to.be.at.least(20);

    // Resume with no steps left to take: the exported model is exactly the checkpoint's weights.
    const same = await standalone([...common, '--max-steps', String(saved.step)]);
    expect(same.code, same.out).to.equal(0);
    expect(same.summary).to.include({ steps: saved.step, resumedFromStep: saved.step });
    const model = await loadModel(tf, `${run}/model`);
    model.weights.forEach((w, i) =>
      expect(Array.from(w.read().dataSync()), w.originalName).to.deep.equal(Array.from(saved.groups.weights[i].values)),
    );

    // And it keeps going from there.
    const more = await standalone([...common, '--max-steps', String(saved.step + 5)]);
    expect(more.code, more.out).to.equal(0);
    expect(more.summary).to.include({ steps: saved.step + 5, resumedFromStep: saved.step });
    expect((await ckpts.latest())!.step).to.equal(saved.step + 5);
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
