/**
 * Graph steps (lib/tfjs-native/traced-function.ts): a tfjs function recorded on its first calls
 * and then run as one TensorFlow graph computes what eager tfjs computes: the loss, every gradient
 * and the variables it assigns (batch norm's moving averages), call after call; model.fit through
 * it trains to eager fit's weights; distributed training through it gives one worker's weights. What the graph cannot stand for stays eager,
 * with the reason said: a function that reads its own values, constants that change between calls,
 * inputs of a shape other than recorded. As tf.variableGrads, a variable the loss does not use gets
 * no gradient.
 */
import { expect } from 'chai';
import type * as tfTypes from '@tensorflow/tfjs';
import { DistributedOptimizer } from '../../lib/node/distributed/optimizer';
import { tfjs as tf } from '../../lib/platform/tfjs';
import { registerNativeKernels } from '../../lib/tfjs-native';
import { fitGraphStep } from '../../lib/tfjs-native/graph-fit';
import { ProtoWriter, readFields } from '../../lib/io/protobuf';
import { graphStepsEnabled, supportsGraphFunctions, TracedFunction, tracedGradients } from '../../lib/tfjs-native/traced-function';
import { fakeCluster, FakeCluster } from '../fixtures/distributed/fake-cluster';
import { lcg } from '../fixtures/lcg';
import { smallConvNet } from '../fixtures/small-conv-net';

type Tensor = tfTypes.Tensor;
const t = tf();

const randomTensor = (shape: number[], seed: number) => {
  const r = lcg(seed);
  return t.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r()),
    shape,
  );
};

/** Largest difference relative to max(1, |expected|). */
function worstDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).to.equal(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
  return worst;
}

/** conv (no bias) → batch norm → relu → max pool → dense: batch norm in training assigns its moving averages. */
const convBnNet = (seed: number) => smallConvNet(t, seed, { batchNorm: true });

const trainable = (m: tfTypes.LayersModel) => m.trainableWeights.map((w) => w.read() as tfTypes.Variable);

describe('graph steps (lib/tfjs-native/traced-function.ts)', function () {
  this.timeout(60_000);
  before(function () {
    // The patched addon comes with `tfos setup`: without it this is a broken setup, not a skip.
    if (t.getBackend() !== 'tensorflow') throw new Error(`tfjs-node's native backend is not active (backend '${t.getBackend()}')`);
    if (!supportsGraphFunctions(t.backend())) throw new Error("tfjs-node's addon lacks the binding patch: run 'node bin/tfos.js setup'");
    registerNativeKernels(t);
  });

  it('protobuf: varints (negative int64 too), floats and nested messages read back as written', () => {
    const w = new ProtoWriter()
      .varint(1, 300)
      .varint(2, -1)
      .float(3, 1.5)
      .message(4, (m) => m.string(1, 'Conv2D'));
    const fields = readFields(w.finish());
    expect(fields.map(([f]) => f)).to.deep.equal([1, 2, 3, 4]);
    expect(fields[0][1]).to.equal(300n);
    expect(fields[1][1]).to.equal((1n << 64n) - 1n);
    expect(fields[2][1]).to.equal(1.5);
    expect(Buffer.from(readFields(fields[3][1] as Uint8Array)[0][1] as Uint8Array).toString()).to.equal('Conv2D');
  });

  it('a conv + batch-norm net: loss, gradients and moving averages through the graph match eager tfjs, call after call', () => {
    const graphNet = convBnNet(3);
    const eagerNet = convBnNet(3);
    eagerNet.setWeights(graphNet.getWeights());
    const lossOf = (m: tfTypes.LayersModel) => (x: Tensor, y: Tensor) =>
      t.losses.softmaxCrossEntropy(y, m.apply(x, { training: true }) as Tensor) as tfTypes.Scalar;
    const said: string[] = [];
    const gradientsOf = tracedGradients(t, lossOf(graphNet), (m) => said.push(m));
    for (let call = 0; call < 5; call++) {
      const x = randomTensor([6, 8, 8, 3], 10 + call);
      const y = t.oneHot(t.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3);
      const graph = gradientsOf([x, y], trainable(graphNet));
      const eager = t.variableGrads(() => lossOf(eagerNet)(x, y), trainable(eagerNet));
      expect(worstDifference(graph.value.dataSync(), eager.value.dataSync()), `loss, call ${call}`).to.be.below(1e-5);
      trainable(graphNet).forEach((v, i) => {
        const e = eager.grads[trainable(eagerNet)[i].name];
        expect(worstDifference(graph.grads[v.name].dataSync(), e.dataSync()), `gradient of ${v.name}, call ${call}`).to.be.below(1e-4);
      });
      // Every weight, the moving mean and variance included.
      graphNet.getWeights().forEach((w, i) => {
        expect(worstDifference(w.dataSync(), eagerNet.getWeights()[i].dataSync()), `weight ${i} after call ${call}`).to.be.below(1e-5);
      });
      t.dispose([x, y, graph.value, eager.value, ...Object.values(graph.grads), ...Object.values(eager.grads)]);
    }
    expect(said.join('\n')).to.match(/running as one TensorFlow graph \(\d+ ops, \d+ inputs\)/);
  });

  it('a function that reads the values it computes stays eager, naming the op, and computes right', () => {
    const said: string[] = [];
    const f = new TracedFunction(
      t,
      ([x]) => {
        const sq = t.square(x);
        const first = sq.dataSync()[0];
        return [t.mul(sq, first)];
      },
      (m) => said.push(m),
    );
    for (let call = 0; call < 5; call++) {
      const [out] = f.call([t.tensor1d([call + 1, 2])]);
      expect(Array.from(out.dataSync())).to.deep.equal([(call + 1) ** 4, 4 * (call + 1) ** 2]);
    }
    expect(f.isCompiled).to.equal(false);
    expect(f.eagerReason).to.match(/reads the values of Square's output/);
    expect(said.join('\n')).to.match(/running eagerly: .*Square/);
  });

  it('constants that change between calls keep it eager; values stay right', () => {
    let k = 1;
    const f = new TracedFunction(t, ([x]) => [t.mul(x, t.scalar(k++))]);
    for (let call = 1; call <= 5; call++) expect(Array.from(f.call([t.tensor1d([1, 2])])[0].dataSync())).to.deep.equal([call, 2 * call]);
    expect(f.isCompiled).to.equal(false);
    expect(f.eagerReason).to.match(/recordings differed/);
  });

  it('a value taken from JavaScript that changes after the graph is made ends the graph at the next recheck', () => {
    let k = 2;
    const f = new TracedFunction(t, ([x]) => [t.mul(x, t.scalar(k))], undefined, 3);
    const call = () => Array.from(f.call([t.tensor1d([1, 2])])[0].dataSync());
    expect([call(), call()]).to.deep.equal([
      [2, 4],
      [2, 4],
    ]);
    expect(f.isCompiled).to.equal(true);
    k = 5;
    call(); // graph calls until the recheck still hold the recorded value
    call();
    expect(call(), 'the recheck runs eagerly').to.deep.equal([5, 10]);
    expect(f.isCompiled).to.equal(false);
    expect(f.eagerReason).to.match(/differed from the graph's/);
    expect(call()).to.deep.equal([5, 10]);
  });

  it('inputs of another shape than recorded run eagerly; the graph stays for the recorded shape', () => {
    const w = t.variable(t.tensor1d([1, 2, 3]), true, 'graph_steps_w');
    const f = new TracedFunction(t, ([x]) => [t.sum(t.mul(x, w), -1)]);
    for (let call = 0; call < 3; call++) f.call([t.ones([2, 3])]);
    expect(f.isCompiled).to.equal(true);
    expect(Array.from(f.call([t.ones([4, 3])])[0].dataSync())).to.deep.equal([6, 6, 6, 6]);
    w.assign(t.tensor1d([1, 1, 1]));
    // Variables are read when called, not when recorded.
    expect(Array.from(f.call([t.ones([2, 3])])[0].dataSync())).to.deep.equal([3, 3]);
    expect(f.isCompiled).to.equal(true);
    f.dispose();
    w.dispose();
  });

  it('tracedGradients, as tf.variableGrads, gives no gradient for a variable the loss does not use, through the graph too', () => {
    const a = t.variable(t.tensor1d([1, 2]), true, 'graph_steps_used');
    const unused = t.variable(t.tensor1d([5]), true, 'graph_steps_unused');
    const lossOf = (x: Tensor) => t.sum(t.mul(x, a)) as tfTypes.Scalar;
    const said: string[] = [];
    const gradientsOf = tracedGradients(t, lossOf, (m) => said.push(m));
    for (let call = 0; call < 4; call++) {
      const { value, grads } = gradientsOf([t.tensor1d([3, 4])], [a, unused]);
      expect(Object.keys(grads), `call ${call}`).to.deep.equal(['graph_steps_used']);
      expect(Array.from(grads.graph_steps_used.dataSync())).to.deep.equal([3, 4]);
      expect(value.dataSync()[0]).to.equal(11);
    }
    expect(
      said.some((m) => m.startsWith('running as one TensorFlow graph')),
      said.join('; '),
    ).to.equal(true);
    const eager = t.variableGrads(() => lossOf(t.tensor1d([3, 4])), [a, unused]);
    expect(Object.keys(eager.grads)).to.deep.equal(['graph_steps_used']);
    a.dispose();
    unused.dispose();
  });

  it('model.fit runs its steps as one TensorFlow graph and trains to the weights eager fit gives (conv + batch norm, Adam)', async () => {
    const xs = randomTensor([24, 8, 8, 3], 40);
    const ys = t.oneHot(
      t.tensor1d(
        Array.from({ length: 24 }, (_, i) => i % 3),
        'int32',
      ),
      3,
    );
    const fit = async (graph: boolean) => {
      const m = convBnNet(5);
      m.compile({ optimizer: t.train.adam(0.01), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
      const before = process.env.TFOS_GRAPH_STEP;
      process.env.TFOS_GRAPH_STEP = graph ? '1' : '0';
      try {
        // 24 rows in batches of 8: every batch the recorded shape; 3 epochs, one fit call.
        const h = await m.fit(xs, ys, { batchSize: 8, epochs: 3, shuffle: false, verbose: 0 });
        // trainOnBatch builds a train function per call: the model's recording serves it too.
        const loss = (await m.trainOnBatch(xs.slice(0, 8), ys.slice(0, 8))) as number[];
        return { m, history: h.history.loss as number[], loss: loss[0], weights: m.getWeights().map((w) => w.dataSync()) };
      } finally {
        if (before === undefined) delete process.env.TFOS_GRAPH_STEP;
        else process.env.TFOS_GRAPH_STEP = before;
      }
    };
    const graph = await fit(true);
    const eager = await fit(false);
    expect(fitGraphStep(graph.m)?.isCompiled, 'fit ran as a graph').to.equal(true);
    expect(fitGraphStep(eager.m), 'TFOS_GRAPH_STEP=0: no recording').to.equal(undefined);
    graph.history.forEach((l, i) => expect(Math.abs(l - eager.history[i]), `epoch ${i} loss`).to.be.below(1e-4));
    expect(Math.abs(graph.loss - eager.loss), 'trainOnBatch loss').to.be.below(1e-4);
    graph.weights.forEach((w, i) =>
      expect(worstDifference(w, eager.weights[i]), `weight ${i} (moving averages included)`).to.be.below(1e-4),
    );
  });

  it('TFOS_GRAPH_STEP=0 (or off) turns graph steps off', () => {
    expect(graphStepsEnabled(undefined)).to.equal(true);
    expect(graphStepsEnabled('1')).to.equal(true);
    expect(graphStepsEnabled('0')).to.equal(false);
    expect(graphStepsEnabled('off')).to.equal(false);
  });

  describe('with the distributed optimizer (minimizeOn)', () => {
    let cluster: FakeCluster | undefined;
    afterEach(async () => {
      await cluster?.stop();
      cluster = undefined;
    });

    /** conv + relu → pool → dense: no batch statistics, so split batches add up to the whole. */
    const convNet = (seed: number) => smallConvNet(t, seed);
    const xs = () => randomTensor([10, 8, 8, 3], 30);
    const ys = () => t.oneHot(t.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 'int32'), 3);

    it('2 workers × batch 5 through the graph give the weights of 1 eager worker × batch 10', async () => {
      const steps = 5;
      const one = convNet(1);
      const opt = t.train.adam(0.01);
      const [x, y] = [xs(), ys()];
      for (let k = 0; k < steps; k++)
        opt.minimize(() => t.losses.softmaxCrossEntropy(y, one.predict(x) as Tensor) as tfTypes.Scalar, false, trainable(one));
      const expected = one.getWeights().map((w) => w.dataSync());

      cluster = await fakeCluster({ numWorkers: 2 });
      const said: string[] = [];
      const { workers } = await cluster.start({ timeoutMs: 20_000, log: (line) => said.push(line) });
      const results = await Promise.all(
        workers.map(async (server, r) => {
          const m = convNet(r === 0 ? 1 : 77); // the chief's weights are broadcast
          const dist = new DistributedOptimizer(server, t.train.adam(0.01));
          await dist.init(m);
          const lossOf = (bx: Tensor, by: Tensor) => t.losses.softmaxCrossEntropy(by, m.predict(bx) as Tensor) as tfTypes.Scalar;
          const [bx, by] = [xs().slice(r * 5, 5), ys().slice(r * 5, 5)];
          for (let k = 0; k < steps; k++) await dist.minimizeOn(lossOf, [bx, by]);
          return m.getWeights().map((w) => w.dataSync());
        }),
      );
      expect(
        said.filter((l) => /training step: running as one TensorFlow graph/.test(l)),
        said.join('\n'),
      ).to.have.length(2);
      results[1].forEach((w, i) => expect(worstDifference(w, results[0][i]), `workers agree on weight ${i}`).to.equal(0));
      results[0].forEach((w, i) => expect(worstDifference(w, expected[i]), `weight ${i} vs one worker`).to.be.below(1e-4));
    });
  });
});
