/**
 * Two things a real training run needs from the distributed layer besides gradients:
 *  - chief-only work (a checkpoint, an export) longer than timeoutMs, run in whileBusy(), does not
 *    trip the stall detection of workers already waiting in the next collective;
 *  - non-trainable weights (batch-norm moving statistics), which each worker updates from its own
 *    batches, are identical on every worker after each step.
 */
import { expect } from 'chai';
import type * as TF from '@tensorflow/tfjs';
import { DistributedOptimizer } from '../../lib/node/distributed/optimizer';
import { loadTfjs } from '../../lib/platform/tfjs';
import { fakeCluster, FakeCluster } from '../fixtures/distributed/fake-cluster';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('distributed state: busy workers and non-trainable weights', function () {
  this.timeout(120_000);
  let cluster: FakeCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('a chief busy (whileBusy) for 3× timeoutMs keeps the waiting workers waiting; the collective then completes', async () => {
    cluster = await fakeCluster({ numWorkers: 3 });
    const { workers } = await cluster.start({ timeoutMs: 1000, pingMs: 100 });
    await Promise.all(workers.map((w) => w.barrier()));
    const waiting = workers.slice(1).map((w) => w.allReduce(Float32Array.of(1), 'sum'));
    await workers[0].whileBusy(() => sleep(3000));
    const chief = workers[0].allReduce(Float32Array.of(1), 'sum');
    const sums = await Promise.all([chief, ...waiting]);
    expect(sums.map((s) => s[0])).to.deep.equal([3, 3, 3]);
  });

  it('without whileBusy the same pause fails the waiting workers, naming the chief', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 1000, pingMs: 100 });
    await Promise.all(workers.map((w) => w.barrier()));
    const waiting = workers[1].allReduce(Float32Array.of(1), 'sum').catch((e: Error) => e);
    await sleep(3000);
    expect(((await waiting) as Error).message).to.match(/chief:0 .* did not enter allReduce/);
  });

  it('batch-norm moving statistics are the same on every worker after each step', async () => {
    const { tf } = loadTfjs();
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const build = () => {
      const m = tf.sequential();
      m.add(tf.layers.dense({ inputShape: [4], units: 3 }));
      m.add(tf.layers.batchNormalization());
      m.add(tf.layers.dense({ units: 2 }));
      return m;
    };
    const models = workers.map(() => build());
    const dists = workers.map((w) => new DistributedOptimizer(w, tf.train.sgd(0.1)));
    await Promise.all(dists.map((d, r) => d.init(models[r])));
    const stats = (m: TF.LayersModel) => m.weights.filter((w) => !w.trainable).map((w) => Array.from(w.read().dataSync()));
    for (let step = 0; step < 3; step++) {
      await Promise.all(
        dists.map((d, r) => {
          // Each worker's own batch: different data, so different batch statistics.
          const x = tf.randomNormal([8, 4], r * 3, 1 + r, 'float32', 100 * step + r);
          const y = tf.randomNormal([8, 2], 0, 1, 'float32', 7 + step);
          return d.minimize(() => tf.losses.meanSquaredError(y, models[r].apply(x, { training: true }) as TF.Tensor) as TF.Scalar);
        }),
      );
      expect(stats(models[1])).to.deep.equal(stats(models[0]));
    }
    // The moving mean moved away from its initial zeros: the check above compared real statistics.
    expect(stats(models[0])[0].some((v) => Math.abs(v) > 1e-3)).to.equal(true);
  });
});
