/**
 * The LocalResponseNormalization layer and model files: the layer computes tf.nn.lrn; a model
 * using it, saved with saveModel, loads with plain tf.loadLayersModel in a fresh process once the
 * package is imported; a training state restored into a fresh model and optimizer continues
 * exactly as the original.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { loadTfjs } from '../../lib/platform/tfjs';
import { LocalResponseNormalization, localResponseNormalization } from '../../lib/layers/local-response-normalization';
import { loadModel, restoreTrainingState, saveModel, trainingState } from '../../lib/io/model-files';

const repo = path.resolve(__dirname, '../../..');
const { tf } = loadTfjs();

function smallNet(): TF.Sequential {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }));
  m.add(localResponseNormalization({ depthRadius: 2, bias: 1, alpha: 0.001 / 9, beta: 0.75 }));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 10 }));
  return m;
}

describe('LocalResponseNormalization layer and model files', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-model-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('computes tf.localResponseNormalization and serialises its parameters', () => {
    const x = tf.randomNormal([2, 5, 5, 7], 0, 3, 'float32', 1);
    const layer = new LocalResponseNormalization({ depthRadius: 4, bias: 1, alpha: 0.001 / 9, beta: 0.75 });
    const got = layer.apply(x) as TF.Tensor;
    const want = tf.localResponseNormalization(x as TF.Tensor4D, 4, 1, 0.001 / 9, 0.75);
    expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).to.be.below(1e-6);
    expect(layer.getConfig()).to.include({ depthRadius: 4, bias: 1, alpha: 0.001 / 9, beta: 0.75 });
    expect(() => new LocalResponseNormalization({ depthRadius: -1 })).to.throw(/depthRadius must be an integer >= 0/);
    expect(() => layer.apply(tf.zeros([2, 3]))).to.throw(/takes NHWC images \(rank 4\), got rank 2/);
  });

  it('a saved model with the layer loads with tf.loadLayersModel in a fresh process that imports the package', async () => {
    const model = smallNet();
    const x = tf.randomUniform([3, 8, 8, 3], 0, 1, 'float32', 7);
    const want = Array.from((model.predict(x) as TF.Tensor).dataSync());
    const uri = await saveModel(model, path.join(dir, 'export'));
    expect(uri).to.equal(`file://${path.join(dir, 'export', 'model.json')}`);
    expect(fs.readdirSync(path.join(dir, 'export')).sort()).to.deep.equal(['model.json', 'weights.bin']);
    fs.writeFileSync(path.join(dir, 'x.json'), JSON.stringify(Array.from(x.dataSync())));

    // A user's project: node_modules/tfjs-on-spark → this checkout.
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(repo, path.join(dir, 'node_modules', 'tfjs-on-spark'), 'dir');
    fs.writeFileSync(
      path.join(dir, 'predict.js'),
      `require('tfjs-on-spark');\n` +
        `const tf = require(require.resolve('@tensorflow/tfjs-node', { paths: [${JSON.stringify(repo)}] }));\n` +
        `tf.loadLayersModel('file://' + __dirname + '/export/model.json').then((m) => {\n` +
        `  const x = tf.tensor4d(require('./x.json'), [3, 8, 8, 3]);\n` +
        `  console.log(JSON.stringify({ layers: m.layers.map((l) => l.getClassName()), y: Array.from(m.predict(x).dataSync()) }));\n` +
        `});\n`,
    );
    const out = JSON.parse(
      execFileSync(process.execPath, ['predict.js'], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim()
        .split('\n')
        .pop()!,
    );
    expect(out.layers).to.include('LocalResponseNormalization');
    out.y.forEach((v: number, i: number) => expect(v).to.be.closeTo(want[i], 1e-5));
    // loadModel reads the same files through the package's file systems (local or hdfs://).
    const again = await loadModel(tf, path.join(dir, 'export'));
    Array.from((again.predict(x) as TF.Tensor).dataSync()).forEach((v, i) => expect(v).to.be.closeTo(want[i], 1e-5));
  });

  it('a training state restored into a fresh model and Adam continues exactly like the original', async () => {
    const x = tf.randomUniform([4, 8, 8, 3], 0, 1, 'float32', 3);
    const y = tf.oneHot(tf.tensor1d([1, 2, 3, 4], 'int32'), 10);
    const step = (m: TF.LayersModel, opt: TF.Optimizer) =>
      opt.minimize(() => tf.losses.softmaxCrossEntropy(y, m.apply(x, { training: true }) as TF.Tensor) as TF.Scalar);
    const a = smallNet();
    const optA = tf.train.adam(0.01);
    step(a, optA);
    step(a, optA);
    const saved = await trainingState(a, optA);
    // Non-trainable weights too: batch norm's moving statistics.
    expect(saved.weights.some((w) => /moving_mean/.test(w.name))).to.equal(true);
    expect(saved.weights).to.have.length(a.weights.length);
    expect(saved.optimizer[0].name).to.equal('iter');

    const b = smallNet();
    const optB = tf.train.adam(0.01);
    await restoreTrainingState(tf, b, { groups: saved, uri: 'memory' }, optB);
    a.weights.forEach((w, i) => expect(Array.from(b.weights[i].read().dataSync())).to.deep.equal(Array.from(w.read().dataSync())));
    step(a, optA);
    step(b, optB);
    a.weights.forEach((w, i) => {
      const d = tf.max(tf.abs(tf.sub(w.read(), b.weights[i].read()))).dataSync()[0];
      expect(d, w.originalName).to.be.below(1e-6);
    });
  });

  it('refuses a checkpoint of a different model, naming the weight', async () => {
    const saved = await trainingState(smallNet());
    const other = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
    const err = await restoreTrainingState(tf, other, { groups: saved, uri: 'file:///x/ckpt-1' }).catch((e: Error) => e);
    expect((err as Error).message).to.match(/checkpoint file:\/\/\/x\/ckpt-1 has \d+ weights, the model 2/);
  });
});
