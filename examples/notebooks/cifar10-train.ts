/**
 * The training function the CIFAR-10 notebook (cifar10.ipynb) runs on every TF node: a small CNN,
 * synchronous data-parallel Adam over the workers, a few hundred steps on the run's data
 * (ctx.data: each worker reads its shard). The chief reports progress as `progress {json}` lines,
 * which the notebook draws, evaluates on the test split and saves the model for the notebook.
 */
import { TFNode, tf, tableToTensors, DataFeed, type TFNodeContext } from 'tfjs-on-spark';

export interface TrainArgs {
  steps: number;
  /** Global batch, split over the workers. */
  batch: number;
  /** Folder the chief saves the model to (file system of the notebook's machine). */
  save: string;
  lr?: number;
  testRows?: number;
}

function buildModel(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10 }),
    ],
  });
}

export default async function train(args: TrainArgs, ctx: TFNodeContext): Promise<Record<string, number> | null> {
  const { server } = await TFNode.startClusterServer(ctx);
  if (ctx.jobName === 'ps') {
    await server.join();
    return null;
  }
  const model = buildModel();
  const dist = TFNode.distributedOptimizer(server, tf.train.adam(args.lr ?? 2e-3));
  await dist.init(model);
  const local = Math.max(1, Math.floor(args.batch / ctx.numWorkers));
  const feed = await TFNode.dataFeed(ctx, { shuffle: true });
  let step = 0;
  let lossSum = 0;
  let accSum = 0;
  while (step < args.steps) {
    const table = await feed.nextBatch(local);
    // Synchronous training: stop as soon as any worker has no batch left, so none waits forever.
    const [ready] = await server.allReduce(new Float32Array([table ? 1 : 0]), 'sum');
    if (ready < ctx.numWorkers || !table) break;
    const { xs, ys } = tableToTensors(table, { tf });
    const loss = await dist.minimize(() => tf.losses.softmaxCrossEntropy(ys, model.predict(xs) as tf.Tensor).asScalar(), true);
    const acc = tf.tidy(() => (model.predict(xs) as tf.Tensor).argMax(-1).equal(ys.argMax(-1)).mean());
    lossSum += (await loss!.data())[0];
    accSum += (await acc.data())[0];
    tf.dispose([xs, ys, loss!, acc]);
    step++;
    if (step % 10 === 0) {
      if (ctx.jobName === 'chief') console.log(`progress ${JSON.stringify({ step, loss: lossSum / 10, acc: accSum / 10 })}`);
      [lossSum, accSum] = [0, 0];
    }
  }
  await feed.terminate();
  if (ctx.jobName !== 'chief') return { steps: step };

  // The chief: accuracy on the test split, then the model for the notebook's inference cells.
  const testPath = ctx.absolutePath(ctx.data!.path.replace(/train\/?$/, 'test'));
  const test = await DataFeed.fromDataset(testPath, { epochs: 1 });
  let correct = 0;
  let seen = 0;
  for (let t = await test.nextBatch(250); t && seen < (args.testRows ?? 1000); t = await test.nextBatch(250)) {
    const { xs, ys } = tableToTensors(t, { tf });
    const hits = tf.tidy(() => (model.predict(xs) as tf.Tensor).argMax(-1).equal(ys.argMax(-1)).sum());
    correct += (await hits.data())[0];
    seen += t.numRows;
    tf.dispose([xs, ys, hits]);
  }
  await test.terminate();
  await model.save(`file://${args.save}`);
  console.log(`progress ${JSON.stringify({ done: true, step, testAccuracy: correct / seen, testImages: seen })}`);
  return { steps: step, testAccuracy: correct / seen, testImages: seen };
}
