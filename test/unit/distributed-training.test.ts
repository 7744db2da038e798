/**
 * DistributedOptimizer on in-process workers: K steps on 2 workers with per-worker batch B/2 give
 * the weights of 1 worker with batch B (mean of gradients), through the custom loop, model.fit
 * and the parameter servers (sync); async ps training converges; misuse fails clearly.
 */
import { expect } from 'chai';
import type * as tfTypes from '@tensorflow/tfjs';
import { DistributedOptimizer } from '../../lib/node/distributed/optimizer';
import type { ClusterServer } from '../../lib/node/cluster-server';
import { tfjs as tf } from '../../lib/platform/tfjs';
import { fakeCluster, FakeCluster } from '../fixtures/distributed/fake-cluster';

const K = 6;
const B = 16;
const LR = 0.01;

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32 - 0.5;
  };
}

function dataset(t: typeof tfTypes, n: number) {
  const r = lcg(7);
  const xs = Float32Array.from({ length: n * 4 }, r);
  const ys = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    ys[2 * i] = xs[4 * i] * 2 - xs[4 * i + 1] + 0.5 * xs[4 * i + 2] * xs[4 * i + 3];
    ys[2 * i + 1] = Math.sin(3 * xs[4 * i + 1]) + 0.1 * r();
  }
  return { x: t.tensor2d(xs, [n, 4]), y: t.tensor2d(ys, [n, 2]) };
}

function makeModel(t: typeof tfTypes, seed: number): tfTypes.Sequential {
  const m = t.sequential();
  m.add(
    t.layers.dense({
      inputShape: [4],
      units: 8,
      activation: 'tanh',
      kernelInitializer: t.initializers.glorotUniform({ seed }),
      biasInitializer: t.initializers.randomNormal({ seed: seed + 1, stddev: 0.1 }),
    }),
  );
  m.add(t.layers.dense({ units: 2, kernelInitializer: t.initializers.glorotUniform({ seed: seed + 2 }) }));
  return m;
}

const trainable = (m: tfTypes.LayersModel) => m.trainableWeights.map((w) => w.read() as tfTypes.Variable);
const weightsOf = (m: tfTypes.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

function expectClose(actual: number[][], expected: number[][], tol: number, what: string): void {
  expect(actual.length).to.equal(expected.length);
  let worst = 0;
  actual.forEach((a, i) => a.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - expected[i][j])))));
  expect(worst, `${what}: max |diff| ${worst}`).to.be.below(tol);
}

/** 1 worker, batch B, plain Adam: the reference. */
function reference(t: typeof tfTypes): number[][] {
  const { x, y } = dataset(t, K * B);
  const model = makeModel(t, 1);
  const opt = t.train.adam(LR);
  for (let k = 0; k < K; k++) {
    const xb = x.slice([k * B, 0], [B, 4]);
    const yb = y.slice([k * B, 0], [B, 2]);
    opt.minimize(() => t.losses.meanSquaredError(yb, model.apply(xb) as tfTypes.Tensor) as tfTypes.Scalar, false, trainable(model));
  }
  return weightsOf(model);
}

/** Worker r's half of batch k. */
function shard(t: typeof tfTypes, r: number, k: number, workers: number) {
  const { x, y } = dataset(t, K * B);
  const per = B / workers;
  return { x: x.slice([k * B + r * per, 0], [per, 4]), y: y.slice([k * B + r * per, 0], [per, 2]) };
}

/** Worker r of 2 in ps mode: K synchronous steps on its shards; returns its optimizer and model. */
async function trainPsWorker(t: typeof tfTypes, server: ClusterServer, r: number, lr: number) {
  const model = makeModel(t, r === 0 ? 1 : 77);
  const dist = new DistributedOptimizer(server, t.train.adam(lr), { mode: 'ps' });
  await dist.init(model);
  for (let k = 0; k < K; k++) {
    const { x, y } = shard(t, r, k, 2);
    await dist.minimize(() => t.losses.meanSquaredError(y, model.apply(x) as tfTypes.Tensor) as tfTypes.Scalar, false, trainable(model));
  }
  return { dist, model };
}

describe('DistributedOptimizer (in-process workers)', function () {
  this.timeout(120_000);
  let t: typeof tfTypes;
  let expected: number[][];
  let cluster: FakeCluster | undefined;
  before(() => {
    t = tf();
    expected = reference(t);
  });
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('custom loop (minimize), 2 workers × batch B/2 = 1 worker × batch B; chief weights broadcast', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const results = await Promise.all(
      workers.map(async (server, r) => {
        const model = makeModel(t, r === 0 ? 1 : 99);
        const dist = new DistributedOptimizer(server, t.train.adam(LR));
        await dist.init(model);
        for (let k = 0; k < K; k++) {
          const { x, y } = shard(t, r, k, 2);
          await dist.minimize(
            () => t.losses.meanSquaredError(y, model.apply(x) as tfTypes.Tensor) as tfTypes.Scalar,
            false,
            trainable(model),
          );
        }
        expect(dist.steps).to.equal(K);
        return weightsOf(model);
      }),
    );
    expect(results[1]).to.deep.equal(results[0]);
    expectClose(results[0], expected, 1e-5, 'minimize vs reference');
  });

  it('minimize without init or varList finds the variables f trains (Adam state excluded)', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const results = await Promise.all(
      workers.map(async (server, r) => {
        const model = makeModel(t, r === 0 ? 1 : 42);
        const dist = new DistributedOptimizer(server, t.train.adam(LR));
        for (let k = 0; k < K; k++) {
          const { x, y } = shard(t, r, k, 2);
          await dist.minimize(() => t.losses.meanSquaredError(y, model.apply(x) as tfTypes.Tensor) as tfTypes.Scalar);
        }
        expect(dist.variables.map((v) => v.shape)).to.deep.equal([[4, 8], [8], [8, 2], [2]]);
        return weightsOf(model);
      }),
    );
    expect(results[1]).to.deep.equal(results[0]);
    expectClose(results[0], expected, 1e-5, 'minimize (no varList) vs reference');
  });

  it('model.fit through wrapModel gives the same weights (gradients applied after each batch)', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const { x, y } = dataset(t, K * B);
    const results = await Promise.all(
      workers.map(async (server, r) => {
        const model = makeModel(t, r === 0 ? 1 : 123);
        const dist = new DistributedOptimizer(server, t.train.adam(LR));
        model.compile({ optimizer: dist.inner, loss: 'meanSquaredError' });
        dist.wrapModel(model);
        // Worker r's shard: the r-th half of every global batch, so fit's batches line up.
        const idx = t.tensor1d(
          Array.from({ length: (K * B) / 2 }, (_, i) => Math.floor(i / (B / 2)) * B + r * (B / 2) + (i % (B / 2))),
          'int32',
        );
        const seen: number[] = [];
        const h = await model.fit(t.gather(x, idx), t.gather(y, idx), {
          batchSize: B / 2,
          epochs: 1,
          shuffle: false,
          verbose: 0,
          callbacks: { onBatchEnd: async (b) => void seen.push(b) },
        });
        expect(seen).to.deep.equal([...Array(K).keys()]);
        expect(h.history.loss).to.have.length(1);
        expect(dist.steps).to.equal(K);
        return weightsOf(model);
      }),
    );
    expect(results[1]).to.deep.equal(results[0]);
    expectClose(results[0], expected, 1e-5, 'fit vs reference');
  });

  it('model.fitDataset through wrapModel gives the same weights', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const results = await Promise.all(
      workers.map(async (server, r) => {
        const model = makeModel(t, r === 0 ? 1 : 321);
        const dist = new DistributedOptimizer(server, t.train.adam(LR));
        model.compile({ optimizer: dist.asOptimizer(), loss: 'meanSquaredError' });
        dist.wrapModel(model);
        const batches = Array.from({ length: K }, (_, k) => shard(t, r, k, 2));
        const ds = t.data.array(batches.map((b) => ({ xs: b.x, ys: b.y })));
        await model.fitDataset(ds, { epochs: 1, verbose: 0 });
        expect(dist.steps).to.equal(K);
        return weightsOf(model);
      }),
    );
    expect(results[1]).to.deep.equal(results[0]);
    expectClose(results[0], expected, 1e-5, 'fitDataset vs reference');
  });

  it('trainOnBatch helper; fit without the callback fails clearly', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const results = await Promise.all(
      workers.map(async (server, r) => {
        const model = makeModel(t, r === 0 ? 1 : 5);
        const dist = new DistributedOptimizer(server, t.train.adam(LR));
        model.compile({ optimizer: dist.asOptimizer(), loss: 'meanSquaredError' });
        const { x, y } = shard(t, r, 0, 2);
        const err = await model.fit(x, y, { batchSize: B / 2, epochs: 1, verbose: 0 }).catch((e: Error) => e);
        expect((err as Error).message).to.match(/not initialized.*wrapModel/);
        for (let k = 0; k < K; k++) {
          const s = shard(t, r, k, 2);
          await dist.trainOnBatch(model, s.x, s.y);
        }
        return weightsOf(model);
      }),
    );
    expect(results[1]).to.deep.equal(results[0]);
    expectClose(results[0], expected, 1e-5, 'trainOnBatch vs reference');
  });

  it('parameter servers, sync (2 ps, variables sharded by size): same weights as the reference', async () => {
    cluster = await fakeCluster({ numWorkers: 2, numPs: 2 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const results = await Promise.all(workers.map(async (server, r) => weightsOf((await trainPsWorker(t, server, r, LR)).model)));
    expect(results[1]).to.deep.equal(results[0]);
    expectClose(results[0], expected, 1e-5, 'ps sync vs reference');
  });

  it('ps mode: getWeights() reads the optimizer state back from the ps nodes in tf.Optimizer layout; setWeights() before init starts new ps nodes from it', async () => {
    // The reference: plain Adam on one worker, K steps; its state is what a checkpoint holds.
    const { x, y } = dataset(t, K * B);
    const refModel = makeModel(t, 1);
    const refOpt = t.train.adam(LR);
    for (let k = 0; k < K; k++) {
      const [xb, yb] = [x.slice([k * B, 0], [B, 4]), y.slice([k * B, 0], [B, 2])];
      refOpt.minimize(
        () => t.losses.meanSquaredError(yb, refModel.apply(xb) as tfTypes.Tensor) as tfTypes.Scalar,
        false,
        trainable(refModel),
      );
    }
    const values = async (list: Promise<Array<{ name: string; tensor: tfTypes.Tensor }>>) =>
      (await list).map((w) => Array.from(w.tensor.dataSync()));
    const refState = await values(refOpt.getWeights());

    // Two workers on two ps nodes, K steps: the state gathered from the ps nodes is the reference's.
    cluster = await fakeCluster({ numWorkers: 2, numPs: 2 });
    let { workers } = await cluster.start({ timeoutMs: 20_000 });
    const saved = await Promise.all(
      workers.map(async (server, r) => {
        const { dist, model } = await trainPsWorker(t, server, r, LR);
        return { state: await dist.getWeights(), weights: weightsOf(model) };
      }),
    );
    const gathered = saved[0].state.map((w) => Array.from(w.tensor.dataSync()));
    expect(saved[0].state.map((w) => w.name)[0]).to.equal('iter');
    expect(gathered[0]).to.deep.equal([K]);
    expect(gathered.length).to.equal(refState.length);
    expectClose(gathered, refState, 1e-5, 'ps optimizer state vs reference');
    await cluster.stop();

    // A new cluster (a resumed run): weights and state restored before init; the ps nodes hold them.
    cluster = await fakeCluster({ numWorkers: 2, numPs: 2 });
    ({ workers } = await cluster.start({ timeoutMs: 20_000 }));
    const restored = await Promise.all(
      workers.map(async (server) => {
        const model = makeModel(t, 5);
        trainable(model).forEach((v, i) => v.assign(t.tensor(saved[0].weights[i], v.shape)));
        const dist = new DistributedOptimizer(server, t.train.adam(LR), { mode: 'ps' });
        await dist.setWeights(saved[0].state);
        await dist.init(model);
        return { state: await values(dist.getWeights()), weights: weightsOf(model) };
      }),
    );
    for (const r of restored) {
      expect(r.state).to.deep.equal(gathered);
      expect(r.weights).to.deep.equal(saved[0].weights);
    }
  });

  it('parameter server, async: 3 workers pushing without waiting for each other converge', async () => {
    cluster = await fakeCluster({ numWorkers: 3, numPs: 1 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const n = 64;
    const { x, y } = dataset(t, n);
    const lossOf = (m: tfTypes.LayersModel) =>
      t.tidy(() => (t.losses.meanSquaredError(y, m.apply(x) as tfTypes.Tensor) as tfTypes.Scalar).dataSync()[0]);
    const curves = await Promise.all(
      workers.map(async (server, r) => {
        const model = makeModel(t, 1 + r);
        const dist = new DistributedOptimizer(server, t.train.adam(0.05), { mode: 'ps', sync: false });
        await dist.init(model);
        const before = lossOf(model);
        for (let k = 0; k < 40 + r * 7; k++) {
          const i = (k * 8 + r * 16) % n;
          const xb = x.slice([i, 0], [8, 4]);
          const yb = y.slice([i, 0], [8, 2]);
          await dist.minimize(
            () => t.losses.meanSquaredError(yb, model.apply(xb) as tfTypes.Tensor) as tfTypes.Scalar,
            false,
            trainable(model),
          );
          if (r === 1 && k % 5 === 0) await new Promise((res) => setTimeout(res, 3));
        }
        return { before, after: lossOf(model) };
      }),
    );
    for (const c of curves) expect(c.after, JSON.stringify(curves)).to.be.below(c.before * 0.5);
  });

  it('workers with different models fail with an error naming the chief', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 5000 });
    const errs = await Promise.all(
      workers.map(async (server, r) => {
        const m = t.sequential({ layers: [t.layers.dense({ inputShape: [4], units: r ? 3 : 2 })] });
        return new DistributedOptimizer(server, t.train.sgd(0.1)).init(m).then(
          () => undefined,
          (e: Error) => e,
        );
      }),
    );
    expect(errs[0]).to.equal(undefined);
    expect(errs[1]!.message).to.match(
      /differ from chief:0 127\.0\.0\.1:\d+'s: it has 2 variables \/ 10 floats, worker:0 127\.0\.0\.1:\d+ has 2 \/ 15/,
    );
  });

  it('a ps-mode worker that dies fails the other worker, naming it', async () => {
    cluster = await fakeCluster({ numWorkers: 2, numPs: 1 });
    const { workers } = await cluster.start({ timeoutMs: 3000 });
    const model = [makeModel(t, 1), makeModel(t, 2)];
    const dists = workers.map((s) => new DistributedOptimizer(s, t.train.sgd(0.1), { mode: 'ps' }));
    await Promise.all(dists.map((d, r) => d.init(model[r])));
    const { x, y } = shard(t, 0, 0, 2);
    const step = (r: number) =>
      dists[r].minimize(
        () => t.losses.meanSquaredError(y, model[r].apply(x) as tfTypes.Tensor) as tfTypes.Scalar,
        false,
        trainable(model[r]),
      );
    await Promise.all([step(0), step(1)]);
    // Worker 0's next step waits in the sync ps for worker 1, which quits instead of stepping.
    const pending = step(0).catch((e: Error) => e);
    void workers[1].close('worker 1 quits');
    const err = (await pending) as Error;
    expect(err.message).to.match(/ps:0 127\.0\.0\.1:\d+: worker:0 127\.0\.0\.1:\d+ (left|closed|disconnected)/);
  });
  for (const average of ['mean', 'sum'] as const) {
    it(`applyGradients with the workers' own gradients: ${average} of them applied everywhere, starting from the chief's values`, async () => {
      cluster = await fakeCluster({ numWorkers: 2 });
      const { workers } = await cluster.start({ timeoutMs: 20_000 });
      const tag = `${average}-${Date.now().toString(36)}`;
      const results = await Promise.all(
        workers.map(async (server, r) => {
          // Different starting values per worker: init must overwrite them with the chief's [1, 1, 1].
          const v = t.variable(t.tensor1d(r === 0 ? [1, 1, 1] : [7, 7, 7]), true, `apply-${tag}-w${r}`);
          const dist = new DistributedOptimizer(server, t.train.sgd(1), { average });
          // Worker r's gradient is [1, 2, 3] * (r + 1).
          await dist.applyGradients({ [v.name]: t.tensor1d([1, 2, 3].map((x) => x * (r + 1))) });
          expect(dist.steps).to.equal(1);
          return Array.from(v.dataSync());
        }),
      );
      // mean: 1 - [1.5, 3, 4.5]; sum: 1 - [3, 6, 9] (SGD, learning rate 1).
      const want = average === 'mean' ? [-0.5, -2, -3.5] : [-2, -5, -8];
      expect(results).to.deep.equal([want, want]);
    });
  }

  it('trainOnBatch through asOptimizer stashes the step; flush() combines and applies it, once', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const { workers } = await cluster.start({ timeoutMs: 20_000 });
    const results = await Promise.all(
      workers.map(async (server, r) => {
        const model = makeModel(t, r === 0 ? 1 : 55);
        const dist = new DistributedOptimizer(server, t.train.adam(LR));
        model.compile({ optimizer: dist.asOptimizer(), loss: 'meanSquaredError' });
        await dist.init(model);
        expect(await dist.flush(), 'nothing stashed yet').to.equal(false);
        for (let k = 0; k < K; k++) {
          const { x, y } = shard(t, r, k, 2);
          await model.trainOnBatch(x, y);
          if (k === 0) {
            // A step stashed and not flushed: the next step of another kind is refused, naming the fix.
            const err = await dist
              .minimize(() => t.losses.meanSquaredError(y, model.apply(x) as tfTypes.Tensor) as tfTypes.Scalar)
              .catch((e: Error) => e);
            expect((err as Error).message).to.contain('await dist.flush()');
          }
          expect(await dist.flush()).to.equal(true);
          expect(await dist.flush(), 'a second flush has nothing to do').to.equal(false);
        }
        expect(dist.steps).to.equal(K);
        return weightsOf(model);
      }),
    );
    expect(results[1]).to.deep.equal(results[0]);
    expectClose(results[0], expected, 1e-5, 'trainOnBatch + flush vs reference');
  });
});
