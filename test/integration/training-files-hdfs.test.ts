/**
 * A run's files on the local stack's real HDFS (through WebHDFS): checkpoints (atomic save, prune,
 * an interrupted staging directory never loaded), the exported tfjs model (saved, loaded,
 * predicting the same), and TensorBoard event files (records framed and checksummed).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type * as TF from '@tensorflow/tfjs';
import { Checkpoints, HostTensor } from '../../lib/io/checkpoints';
import { resolveLocation } from '../../lib/io/dataset-fs';
import { loadModel, saveModel } from '../../lib/io/model-files';
import { maskedCrc32c, SummaryWriter } from '../../lib/io/tfevents';
import { localResponseNormalization } from '../../lib/layers/local-response-normalization';
import { loadTfjs } from '../../lib/platform/tfjs';
import { requireStack } from '../support/stack';

describe('training files on HDFS (local stack, WebHDFS)', function () {
  this.timeout(180_000);
  let base: string;
  let webhdfs: string;
  const { tf } = loadTfjs();

  before(() => {
    const stack = requireStack();
    webhdfs = stack.webhdfs;
    base = `${stack.defaultFS.replace(/\/+$/, '')}/tmp/tfos-training-files-${randomBytes(4).toString('hex')}`;
  });
  after(async () => {
    if (base) await resolveLocation(base, { webhdfs }).fs.remove(resolveLocation(base, { webhdfs }).path);
  });

  it('checkpoints: saved atomically, pruned to `keep`, an interrupted one never loaded', async () => {
    const c = new Checkpoints(`${base}/ckpt`, { webhdfs, keep: 2 });
    const t = (v: number): Record<string, HostTensor[]> => ({
      weights: [{ name: 'w', shape: [3], dtype: 'float32', values: Float32Array.of(v, v + 1, v + 2) }],
    });
    for (const step of [10, 20, 30]) await c.save(step, t(step), { step });
    expect(await c.steps()).to.deep.equal([30, 20]);
    // A writer killed mid-save leaves a staging directory, and one with the final name but no manifest.
    const { fs, path } = resolveLocation(`${base}/ckpt`, { webhdfs });
    await fs.mkdirs(`${path}/.ckpt-00000040.tmp-0badf00d`);
    await fs.writeFile(`${path}/.ckpt-00000040.tmp-0badf00d/tensors.bin`, Buffer.alloc(6));
    await fs.mkdirs(`${path}/ckpt-00000050`);
    await fs.writeFile(`${path}/ckpt-00000050/tensors.bin`, Buffer.alloc(12));
    const cp = await c.latest<{ step: number }>();
    expect(cp!.step).to.equal(30);
    expect(cp!.uri).to.match(/^hdfs:\/\/.*\/ckpt\/ckpt-00000030$/);
    expect(Array.from(cp!.groups.weights[0].values)).to.deep.equal([30, 31, 32]);
    expect(cp!.state).to.deep.equal({ step: 30 });
    // The next save cleans the staging leftovers up.
    await c.save(60, t(60));
    expect((await fs.list(path)).filter((n) => n.startsWith('.'))).to.deep.equal([]);
  });

  it('the exported model (with the LRN layer) saves to and loads from hdfs://', async () => {
    const m = tf.sequential();
    m.add(tf.layers.conv2d({ inputShape: [6, 6, 3], filters: 4, kernelSize: 3, padding: 'same' }));
    m.add(localResponseNormalization({ depthRadius: 2 }));
    m.add(tf.layers.flatten());
    m.add(tf.layers.dense({ units: 10 }));
    const x = tf.randomUniform([2, 6, 6, 3], 0, 1, 'float32', 5);
    const want = Array.from((m.predict(x) as TF.Tensor).dataSync());
    const uri = await saveModel(m, `${base}/model`, { webhdfs });
    expect(uri).to.match(/^hdfs:\/\/.*\/model\/model\.json$/);
    const loaded = await loadModel(tf, `${base}/model`, { webhdfs });
    Array.from((loaded.predict(x) as TF.Tensor).dataSync()).forEach((v, i) => expect(v).to.be.closeTo(want[i], 1e-5));
  });

  it('TensorBoard event files: every record framed with valid masked CRC-32Cs', async () => {
    const w = new SummaryWriter(`${base}/logs`, { webhdfs });
    w.scalars(1, { loss: 2 });
    await w.flush();
    w.scalars(2, { loss: 1, test_accuracy: 0.5 });
    await w.close();
    const { fs, path } = resolveLocation(`${base}/logs`, { webhdfs });
    const [name] = await fs.list(path);
    expect(name).to.match(/^events\.out\.tfevents\./);
    const bytes = await fs.readFile(`${path}/${name}`);
    let records = 0;
    for (let at = 0; at < bytes.length; records++) {
      const len = Number(bytes.readBigUInt64LE(at));
      expect(bytes.readUInt32LE(at + 8)).to.equal(maskedCrc32c(bytes.subarray(at, at + 8)));
      expect(bytes.readUInt32LE(at + 12 + len)).to.equal(maskedCrc32c(bytes.subarray(at + 12, at + 12 + len)));
      at += 16 + len;
    }
    expect(records).to.equal(3); // file_version + two summaries
  });
});
