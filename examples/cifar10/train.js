/**
 * CIFAR-10 on a tfjs-on-spark cluster: synchronous data-parallel training (all-reduce of
 * gradients; or parameter servers when the cluster has ps nodes), in either input mode:
 *   InputMode.TENSORFLOW — each worker reads its shard of DATA/train itself;
 *   InputMode.SPARK      — the driver calls cluster.train(DATA/train) and Spark streams the rows.
 * Arguments (after `--` on the CLI): --data DIR --epochs E --batch B --lr LR --max-steps N
 * The chief evaluates on DATA/test at the end and optionally saves the model to --save DIR.
 */
const { TFNode, tableToTensors, DataFeed } = require('tfjs-on-spark');
const { buildModel } = require('./model');

function parse(args) {
  const o = { data: 'data/cifar10', epochs: 1, batch: 64, lr: 0.001, maxSteps: Infinity, save: undefined, testRows: 2000 };
  const list = Array.isArray(args) ? args : [];
  for (let i = 0; i < list.length; i += 2) {
    const [k, v] = [list[i], list[i + 1]];
    if (k === '--data') o.data = v;
    else if (k === '--epochs') o.epochs = Number(v);
    else if (k === '--batch') o.batch = Number(v);
    else if (k === '--lr') o.lr = Number(v);
    else if (k === '--max-steps') o.maxSteps = Number(v);
    else if (k === '--save') o.save = v;
    else if (k === '--test-rows') o.testRows = Number(v);
    else throw new Error(`train.js: unknown argument ${k}`);
  }
  if (!(o.batch > 0) || !(o.epochs > 0)) throw new Error('train.js: --batch and --epochs must be positive');
  return o;
}

module.exports = async function train(args, ctx) {
  const opts = parse(args);
  const tf = require('@tensorflow/tfjs-node');
  const { server } = await TFNode.startClusterServer(ctx);
  if (ctx.jobName === 'ps') return server.join();

  const model = buildModel(tf);
  const mode = ctx.clusterSpec.ps.length ? 'ps' : 'allreduce';
  const dist = TFNode.distributedOptimizer(server, tf.train.adam(opts.lr), { mode });
  await dist.init(model);
  // Each worker takes batch/numWorkers rows a step, so the global batch stays `batch`.
  const local = Math.max(1, Math.floor(opts.batch / ctx.numWorkers));
  const feed = await TFNode.dataFeed(ctx, { path: `${opts.data}/train`, epochs: opts.epochs, shuffle: true });

  const started = Date.now();
  let steps = 0;
  let lossSum = 0;
  const lossFn = (xs, ys) => () => tf.losses.softmaxCrossEntropy(ys, model.predict(xs)).asScalar();
  for (;;) {
    const table = steps < opts.maxSteps ? await feed.nextBatch(local) : null;
    // Synchronous training: stop as soon as any worker has no batch left, so none waits forever.
    const [ready] = await server.allReduce(new Float32Array([table ? 1 : 0]), 'sum');
    if (ready < ctx.numWorkers) break;
    const { xs, ys } = tableToTensors(table, { tf });
    const loss = await dist.minimize(lossFn(xs, ys), true);
    lossSum += (await loss.data())[0];
    tf.dispose([xs, ys, loss]);
    steps++;
    if (steps % 20 === 0) console.log(`step ${steps}: mean loss ${(lossSum / 20).toFixed(4)} (${((Date.now() - started) / steps).toFixed(0)} ms/step)`), (lossSum = 0);
  }
  await feed.terminate();
  const seconds = (Date.now() - started) / 1000;
  const result = { worker: ctx.workerNum, steps, seconds, mode, inputMode: ctx.inputMode };
  if (ctx.jobName !== 'chief') return result;

  // The chief evaluates (TENSORFLOW mode reads the test split directly; in SPARK mode, too).
  const testFeed = await DataFeed.fromDataset(ctx.absolutePath(`${opts.data}/test`), { epochs: 1 });
  let correct = 0;
  let seen = 0;
  for (let t = await testFeed.nextBatch(500); t && seen < opts.testRows; t = await testFeed.nextBatch(500)) {
    const { xs, ys } = tableToTensors(t, { tf });
    const hits = tf.tidy(() => model.predict(xs).argMax(-1).equal(ys.argMax(-1)).sum());
    correct += (await hits.data())[0];
    seen += t.numRows;
    tf.dispose([xs, ys, hits]);
  }
  await testFeed.terminate();
  if (opts.save) await model.save(`file://${ctx.absolutePath(opts.save).replace(/^file:\/\//, '')}`);
  console.log(`test accuracy ${(correct / seen).toFixed(4)} on ${seen} images after ${steps} steps (${seconds.toFixed(1)} s)`);
  return { ...result, testAccuracy: correct / seen, testImages: seen };
};
