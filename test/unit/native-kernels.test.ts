/**
 * tfjs-on-spark's native kernels (lib/tfjs-native) compute what tfjs's own implementations do:
 * every op and its gradients, on random inputs, on the 'tensorflow' backend with the kernels
 * against the same function on tfjs's 'cpu' backend (where nothing dispatches to them, so tfjs's
 * reference code runs). Adam's native update follows tfjs's Adam step for step, including after a
 * variable is assigned from outside (broadcast, setWeights).
 */
import { expect } from 'chai';
import type * as tfTypes from '@tensorflow/tfjs';
import { DistributedOptimizer } from '../../lib/node/distributed/optimizer';
import { tfjs as tf } from '../../lib/platform/tfjs';
import { fakeCluster, FakeCluster } from '../fixtures/distributed/fake-cluster';
import { lcg } from '../fixtures/lcg';
import { smallConvNet } from '../fixtures/small-conv-net';
import { LEVERS, leversFromEnv, registerNativeKernels } from '../../lib/tfjs-native';
import { fusedOpsInUse } from '../../lib/tfjs-native/fused-ops';

type Tensor = tfTypes.Tensor;
const t = tf();

const rand = (shape: number[], seed: number, scale = 1) => {
  const r = lcg(seed);
  return { shape, values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * scale) };
};
type Input = ReturnType<typeof rand>;

/** Value and gradients (w.r.t. every input) of `f`, as plain arrays, on `backend`. */
async function valueAndGrads(backend: string, inputs: Input[], f: (...xs: Tensor[]) => Tensor): Promise<number[][]> {
  await t.setBackend(backend);
  return t.tidy(() => {
    const xs = inputs.map((i) => t.tensor(i.values, i.shape));
    // Sum against a fixed random weighting, so every output element's gradient is exercised.
    const w = t.tensor(rand(f(...xs).shape, 99).values, f(...xs).shape);
    const { value, grads } = t.valueAndGrads((...a: Tensor[]) => t.sum(t.mul(f(...a), w)))(xs);
    return [Array.from(f(...xs).dataSync()), [value.dataSync()[0]], ...grads.map((g) => Array.from(g.dataSync()))];
  });
}

function expectClose(actual: number[][], expected: number[][], what: string, tol = 1e-4, skip: number[] = []): void {
  expect(actual.length, what).to.equal(expected.length);
  actual.forEach((a, i) => {
    if (skip.includes(i)) return;
    expect(a.length, `${what} [${i}] length`).to.equal(expected[i].length);
    let worst = 0;
    a.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - expected[i][j]) / Math.max(1, Math.abs(expected[i][j])))));
    expect(worst, `${what}: output ${i} (0 value, 1 loss, then gradients) differs by ${worst}`).to.be.below(tol);
  });
}

/** Same values and gradients on both backends (`skip`: outputs not to compare). Resolves to the native ones. */
async function sameOnBothBackends(
  what: string,
  inputs: Input[],
  f: (...xs: Tensor[]) => Tensor,
  tol?: number,
  skip?: number[],
): Promise<number[][]> {
  const reference = await valueAndGrads('cpu', inputs, f);
  const native = await valueAndGrads('tensorflow', inputs, f);
  expectClose(native, reference, what, tol, skip);
  return native;
}

describe('native kernels (lib/tfjs-native)', function () {
  this.timeout(60_000);
  const native = t.getBackend() === 'tensorflow';
  before(function () {
    // tfjs-node's native backend comes with `tfos setup`: without it this is a broken setup, not a skip.
    if (!native) throw new Error(`tfjs-node's native backend is not active (backend '${t.getBackend()}'): run 'node bin/tfos.js setup'`);
    expect(registerNativeKernels(t)).to.have.members([...LEVERS]);
  });
  after(() => t.setBackend('tensorflow'));

  it('registers idempotently and reads TFOS_NATIVE_KERNELS', () => {
    expect(registerNativeKernels(t)).to.have.members([...LEVERS]);
    expect(leversFromEnv('0')).to.deep.equal([]);
    expect(leversFromEnv(undefined)).to.deep.equal([...LEVERS]);
    expect(leversFromEnv('adam, relu-grad')).to.deep.equal(['adam', 'relu-grad']);
    expect(() => leversFromEnv('adma')).to.throw(/unknown native kernel lever 'adma'/);
  });

  it('relu: value and gradient (ReluGrad), also second order', async () => {
    await sameOnBothBackends('relu', [rand([4, 7, 5], 1)], (x) => t.relu(x));
    await sameOnBothBackends('relu∘relu·x', [rand([33], 2)], (x) => t.mul(t.relu(t.relu(x)), x));
  });

  // The forward runs TensorFlow's fused op where the (patched) binding reaches it, else three ops: both forms, same numbers.
  for (const forward of ['TensorFlow fused op', 'three ops'] as const) {
    describe(`forward as ${forward}`, () => {
      before(function () {
        if (forward === 'three ops') process.env.TFOS_TF_FUSED_OPS = '0';
        else if (fusedOpsInUse(t, t.findBackend('tensorflow') as never) === 'none')
          throw new Error(`tfjs-node's addon lacks the binding patch (TensorFlow's fused ops unreachable): run 'node bin/tfos.js setup'`);
      });
      after(() => delete process.env.TFOS_TF_FUSED_OPS);

      for (const [pad, strides, activation] of [
        ['same', 1, 'relu'],
        ['valid', 2, 'relu'],
        ['same', 2, 'linear'],
      ] as const) {
        it(`fused conv2d + bias + ${activation}, pad ${pad}, strides ${strides}: value and gradients of x, filter, bias`, async () => {
          await sameOnBothBackends('conv2d', [rand([3, 9, 8, 4], 3), rand([3, 3, 4, 6], 4, 0.5), rand([6], 5)], (x, filter, bias) =>
            t.fused.conv2d({ x: x as tfTypes.Tensor4D, filter: filter as tfTypes.Tensor4D, bias, strides, pad, activation }),
          );
        });
      }

      for (const activation of ['relu', 'linear'] as const) {
        it(`fused matMul + bias + ${activation}: value and gradients of a, b, bias`, async () => {
          await sameOnBothBackends('matMul', [rand([6, 5], 6), rand([5, 7], 7), rand([7], 8)], (a, b, bias) =>
            t.fused.matMul({ a: a as tfTypes.Tensor2D, b: b as tfTypes.Tensor2D, bias, activation }),
          );
        });
      }
    });
  }

  for (const [pad, strides, channels] of [
    ['same', 1, 3],
    ['valid', 2, 4],
  ] as const) {
    it(`conv2d without bias, pad ${pad}, strides ${strides}, ${channels} channels: value and gradients (oneDNN filter gradient)`, async () => {
      await sameOnBothBackends('conv2d', [rand([3, 9, 8, channels], 60), rand([3, 3, channels, 5], 61, 0.5)], (x, filter) =>
        t.conv2d(x as tfTypes.Tensor4D, filter as tfTypes.Tensor4D, strides, pad),
      );
    });
  }

  for (const [size, stride, pad] of [
    [3, 2, 'same'],
    [2, 2, 'valid'],
    [3, 1, 'valid'],
  ] as const) {
    it(`max pool ${size}×${size} / ${stride} ${pad}: value and gradient (oneDNN with a workspace)`, async () => {
      await sameOnBothBackends('maxPool', [rand([3, 9, 8, 5], 50 + size + stride)], (x) =>
        t.maxPool(x as tfTypes.Tensor4D, size, stride, pad),
      );
    });
  }

  it('falls back to tfjs for what it does not fuse (prelu, transposed)', async () => {
    await sameOnBothBackends('matMul transposeB', [rand([6, 5], 9), rand([7, 5], 10), rand([7], 11)], (a, b, bias) =>
      t.fused.matMul({ a: a as tfTypes.Tensor2D, b: b as tfTypes.Tensor2D, bias, transposeB: true, activation: 'relu' }),
    );
    await sameOnBothBackends('conv2d elu', [rand([2, 5, 5, 2], 12), rand([3, 3, 2, 3], 13), rand([3], 14)], (x, f, bias) =>
      t.fused.conv2d({ x: x as tfTypes.Tensor4D, filter: f as tfTypes.Tensor4D, bias, strides: 1, pad: 'same', activation: 'elu' }),
    );
  });

  it('softmax cross-entropy on logits: loss and gradient of the logits, with label smoothing, reductions and weights', async () => {
    const labels = rand([8, 5], 15);
    labels.values.forEach((v, i) => (labels.values[i] = v + 0.5)); // non-negative, like probabilities
    // Output 2 is the labels' gradient, checked in the next test.
    await sameOnBothBackends(
      'softmaxCrossEntropy',
      [labels, rand([8, 5], 16, 4)],
      (y, logits) => t.losses.softmaxCrossEntropy(y, logits),
      1e-4,
      [2],
    );
    await sameOnBothBackends(
      'softmaxCrossEntropy label smoothing 0.2',
      [labels, rand([8, 5], 20, 4)],
      (y, logits) => t.losses.softmaxCrossEntropy(y, logits, undefined, 0.2),
      1e-4,
      [2],
    );
    await sameOnBothBackends(
      'softmaxCrossEntropy NONE',
      [labels, rand([8, 5], 17, 4)],
      (y, logits) => t.losses.softmaxCrossEntropy(y, logits, undefined, 0, t.Reduction.NONE),
      1e-4,
      [2],
    );
    // Weights as a constant: tfjs has no gradient through the non-zero count of the weights.
    const weights = rand([8], 19);
    await sameOnBothBackends(
      'softmaxCrossEntropy weighted',
      [labels, rand([8, 5], 18, 4)],
      (y, logits) => t.losses.softmaxCrossEntropy(y, logits, t.tensor(weights.values)),
      1e-4,
      [2],
    );
  });

  it("softmax cross-entropy: the labels' gradient is TensorFlow's −log softmax(logits) (tfjs's own gives labels − softmax)", async () => {
    const labels = rand([4, 3], 25);
    const logits = rand([4, 3], 26, 3);
    const [, , dLabels] = await sameOnBothBackends(
      'xent',
      [labels, logits],
      (y, l) => t.losses.softmaxCrossEntropy(y, l, undefined, 0, t.Reduction.SUM),
      1e-4,
      [2],
    );
    // valueAndGrads weights the (scalar) loss by a fixed random w: dLabels = −w · log softmax.
    const w = rand([], 99).values[0];
    const expected = t.tidy(() => Array.from(t.mul(-w, t.logSoftmax(t.tensor(logits.values, logits.shape))).dataSync()));
    expectClose([dLabels], [expected], 'labels gradient');
  });

  it('batch norm in training: output, gradients of x, gamma and beta, and the moving averages', async () => {
    const run = async (backend: string) => {
      await t.setBackend(backend);
      const layer = t.layers.batchNormalization({
        momentum: 0.9,
        epsilon: 1e-5,
        gammaInitializer: 'randomNormal',
        betaInitializer: 'randomNormal',
      });
      const x0 = rand([4, 5, 3, 6], 40, 3);
      const x = t.tensor(x0.values, x0.shape);
      layer.build(x.shape);
      const r = rand([4, 5, 3, 6], 41);
      const w = t.tensor(r.values, r.shape);
      const [g0, b0] = [rand([6], 42), rand([6], 43)];
      layer.setWeights([t.tensor(g0.values), t.tensor(b0.values), ...layer.getWeights().slice(2)]);
      const vars = layer.trainableWeights.map((v) => v.read() as tfTypes.Variable);
      const f = (xx: Tensor) => t.sum(t.mul(layer.apply(xx, { training: true }) as Tensor, w)) as tfTypes.Scalar;
      const { value, grads } = t.variableGrads(() => f(x), vars);
      const dx = t.grad(f)(x);
      // The moving averages saw both training calls.
      return [
        [value.dataSync()[0]],
        Array.from(dx.dataSync()),
        ...vars.map((v) => Array.from(grads[v.name].dataSync())),
        ...layer
          .getWeights()
          .slice(2)
          .map((m) => Array.from(m.dataSync())),
      ];
    };
    expectClose(await run('tensorflow'), await run('cpu'), 'batch norm', 2e-4);
  });

  it("adam: the native update gives tfjs Adam's weights and moments, also after outside assignments and a new learning rate", async () => {
    const init = [rand([4, 3], 20), rand([3], 21)];
    const data = [rand([16, 4], 22), rand([16, 3], 23)];
    const train = async (backend: string) => {
      await t.setBackend(backend);
      const vars = init.map((i, k) => t.variable(t.tensor(i.values, i.shape), true, `adam_test_${backend}_${k}`));
      const [x, y] = data.map((d) => t.tensor(d.values, d.shape));
      const opt = t.train.adam(0.05);
      const step = () =>
        opt.minimize(() => t.losses.meanSquaredError(y, t.relu(t.add(t.matMul(x, vars[0]), vars[1]))) as tfTypes.Scalar, false, vars);
      for (let k = 0; k < 5; k++) step();
      // A checkpoint's round trip: the state read (moments the native update had left in its
      // handles) and restored as new variables, which the next update starts from.
      await opt.setWeights(await opt.getWeights());
      vars[1].assign(t.tensor(rand([3], 24).values)); // as a broadcast from the chief would
      (opt as unknown as { learningRate: number }).learningRate = 0.02; // tfjs's Adam reads it at every step
      for (let k = 0; k < 5; k++) step();
      const weights = await opt.getWeights();
      const out = [...vars.map((v) => Array.from(v.dataSync())), ...weights.slice(1).map((w) => Array.from(w.tensor.dataSync()))];
      opt.dispose();
      t.dispose([...vars, x, y]);
      return out;
    };
    expectClose(await train('tensorflow'), await train('cpu'), 'adam', 1e-5);
  });

  for (const nesterov of [false, true]) {
    it(`momentum${nesterov ? ' (Nesterov)' : ''}: the native update gives tfjs's weights and accumulations, with a learning-rate schedule and outside assignments`, async () => {
      const init = [rand([4, 3], 30), rand([3], 31)];
      const data = [rand([16, 4], 32), rand([16, 3], 33)];
      const train = async (backend: string) => {
        await t.setBackend(backend);
        const vars = init.map((i, k) => t.variable(t.tensor(i.values, i.shape), true, `momentum_test_${backend}_${String(nesterov)}_${k}`));
        const [x, y] = data.map((d) => t.tensor(d.values, d.shape));
        const opt = t.train.momentum(0.1, 0.9, nesterov);
        const step = () =>
          opt.minimize(() => t.losses.meanSquaredError(y, t.relu(t.add(t.matMul(x, vars[0]), vars[1]))) as tfTypes.Scalar, false, vars);
        for (let k = 0; k < 4; k++) step();
        await opt.setWeights(await opt.getWeights()); // a checkpoint's round trip
        opt.setLearningRate(0.03); // a schedule's next value
        vars[1].assign(t.tensor(rand([3], 34).values)); // as a broadcast from the chief would
        for (let k = 0; k < 4; k++) step();
        const weights = await opt.getWeights();
        const out = [...vars.map((v) => Array.from(v.dataSync())), ...weights.slice(1).map((w) => Array.from(w.tensor.dataSync()))];
        expect(weights.length, 'iterations + one accumulation per variable').to.equal(3);
        opt.dispose();
        t.dispose([...vars, x, y]);
        return out;
      };
      expectClose(await train('tensorflow'), await train('cpu'), 'momentum', 1e-5);
    });
  }

  /** A small conv net with every fused path: conv + relu, pooling, dense + relu, dense logits. */
  const convNet = (seed: number) => smallConvNet(t, seed, { hidden: 6 });
  const batch = (from: number, n: number) => ({
    x: t.tensor(rand([10, 8, 8, 3], 30).values, [10, 8, 8, 3]).slice(from, n),
    y: t.oneHot(t.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 'int32'), 3).slice(from, n),
  });

  it('a small conv net trains to the same weights with and without the kernels', async () => {
    const run = async (backend: string) => {
      await t.setBackend(backend);
      const m = convNet(1);
      const { x, y } = batch(0, 10);
      const opt = t.train.adam(0.01);
      const vars = m.trainableWeights.map((w) => w.read() as tfTypes.Variable);
      for (let k = 0; k < 4; k++)
        opt.minimize(() => t.losses.softmaxCrossEntropy(y, m.predict(x) as Tensor) as tfTypes.Scalar, false, vars);
      const out = m.getWeights().map((w) => Array.from(w.dataSync()));
      opt.dispose();
      m.dispose();
      return out;
    };
    expectClose(await run('tensorflow'), await run('cpu'), 'conv net weights', 1e-4);
  });

  describe('with the distributed optimizer', () => {
    let cluster: FakeCluster | undefined;
    afterEach(async () => {
      await cluster?.stop();
      cluster = undefined;
    });

    it('2 workers × batch 5 give the weights of 1 worker × batch 10 (all-reduce, native kernels)', async () => {
      await t.setBackend('tensorflow');
      const steps = 4;
      const one = convNet(1);
      const opt = t.train.adam(0.01);
      const whole = batch(0, 10);
      for (let k = 0; k < steps; k++)
        opt.minimize(
          () => t.losses.softmaxCrossEntropy(whole.y, one.predict(whole.x) as Tensor) as tfTypes.Scalar,
          false,
          one.trainableWeights.map((w) => w.read() as tfTypes.Variable),
        );
      const expected = one.getWeights().map((w) => Array.from(w.dataSync()));

      cluster = await fakeCluster({ numWorkers: 2 });
      const { workers } = await cluster.start({ timeoutMs: 20_000 });
      const results = await Promise.all(
        workers.map(async (server, r) => {
          const m = convNet(r === 0 ? 1 : 77); // the chief's weights are broadcast
          const dist = new DistributedOptimizer(server, t.train.adam(0.01));
          await dist.init(m);
          const { x, y } = batch(r * 5, 5);
          for (let k = 0; k < steps; k++)
            await dist.minimize(() => t.losses.softmaxCrossEntropy(y, m.predict(x) as Tensor) as tfTypes.Scalar);
          return m.getWeights().map((w) => Array.from(w.dataSync()));
        }),
      );
      expect(results[1]).to.deep.equal(results[0]);
      expectClose(results[0], expected, 'distributed vs one worker', 1e-4);
    });
  });
});
