/**
 * Classifies CIFAR-10 images with a model exported by train.ts (tfjs format, local or hdfs://):
 *
 *   node dist/examples/cifar10/predict.js --model-dir DIR --data DATA [--split test] [--count 10]
 *
 * Prints one line per image (true label, predicted label, confidence) and the accuracy over them.
 * Any program can do the same: import the package (it registers the LRN layer), then
 * `tf.loadLayersModel('file://DIR/model.json')` or the package's `loadModel(tf, 'hdfs://…')`.
 */
import type * as TF from '@tensorflow/tfjs';
import { imagesToFloat32, labelsToInt32 } from '../../lib/io/arrow-tensors';
import { loadTfjs } from '../../lib/platform/tfjs';
import { loadModel } from '../../lib/io/model-files';
import { DataFeed } from '../../lib/node/data-feed';
import { preprocess } from './augment';
import { recipe } from './models';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

export interface Prediction {
  index: number;
  label: number;
  predicted: number;
  confidence: number;
}

/** Classifies the first `count` images of DATA/split with the model in modelDir. */
export async function predict(opts: {
  modelDir: string;
  data: string;
  split?: string;
  count?: number;
}): Promise<{ predictions: Prediction[]; accuracy: number }> {
  const { tf } = loadTfjs();
  const model = await loadModel(tf, opts.modelDir);
  // The exported model's name says which preprocessing it was trained with.
  const r = recipe(model.name === 'cifar10_fast' ? 'fast' : 'seed');
  const feed = await DataFeed.fromDataset(`${opts.data.replace(/\/+$/, '')}/${opts.split ?? 'test'}`, { epochs: 1 });
  const predictions: Prediction[] = [];
  const count = opts.count ?? 10;
  try {
    while (predictions.length < count) {
      const t = await feed.nextBatch(Math.min(250, count - predictions.length));
      if (!t) break;
      const n = t.numRows;
      const labels = labelsToInt32(t);
      const x = tf.tensor4d(preprocess(imagesToFloat32(t), n, r), [n, r.imageSize, r.imageSize, 3]);
      const probs = tf.tidy(() => tf.softmax(model.predict(x) as TF.Tensor2D));
      const p = (await probs.array()) as number[][];
      tf.dispose([x, probs]);
      p.forEach((row, i) => {
        const predicted = row.indexOf(Math.max(...row));
        predictions.push({ index: predictions.length, label: labels[i], predicted, confidence: row[predicted] });
      });
    }
  } finally {
    await feed.terminate();
  }
  const hits = predictions.filter((p) => p.label === p.predicted).length;
  return { predictions, accuracy: predictions.length ? hits / predictions.length : 0 };
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const get = (k: string) => {
    const i = args.indexOf(`--${k}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const modelDir = get('model-dir');
  const data = get('data');
  if (!modelDir || !data) {
    console.error('usage: predict.js --model-dir DIR --data DATA [--split test] [--count N]');
    process.exit(2);
  }
  predict({ modelDir, data, split: get('split'), count: get('count') ? Number(get('count')) : undefined }).then(
    ({ predictions, accuracy }) => {
      for (const p of predictions) {
        console.log(
          `#${p.index}: ${CIFAR10_CLASSES[p.label].padEnd(10)} → ${CIFAR10_CLASSES[p.predicted].padEnd(10)} (${(p.confidence * 100).toFixed(1)}%)${p.label === p.predicted ? '' : '  ✗'}`,
        );
      }
      console.log(`accuracy ${(accuracy * 100).toFixed(1)}% on ${predictions.length} images`);
      process.exit(0);
    },
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
