/**
 * tfjs-on-spark: train and serve TensorFlow.js models on Spark executors.
 *
 *   import { TFCluster, TFNode, InputMode, tf } from 'tfjs-on-spark';
 *
 * TFCluster runs in the driver (the user's Node process); TFNode is used inside the training
 * function that each reserved executor runs.
 */
import { registerNativeKernelsOnLoad } from './tfjs-native/auto';

// TensorFlow's fused kernels for every tfjs-node model in this process (lib/tfjs-native).
registerNativeKernelsOnLoad();

export { InputMode } from './protocol/input-mode';
export { TFCluster } from './driver/tf-cluster';
export { TFNode } from './node/tf-node';

// Layers tfjs lacks, registered with tfjs's serialization on import (tf.loadLayersModel finds them).
export { LocalResponseNormalization, localResponseNormalization } from './layers/local-response-normalization';
// Around a training run: checkpoints, the tfjs model format on local disk or HDFS, TensorBoard files, the plot.
export { Checkpoints, CheckpointError } from './io/checkpoints';
export { trainingState, restoreTrainingState, saveModel, loadModel } from './io/model-files';
export { SummaryWriter } from './io/tfevents';
export { renderTrainingPlot, trainingPlotSpec } from './io/training-plot';
export { TrainingProgress } from './driver/training-progress';

// Data helpers for training functions: the feed types and Arrow → tfjs tensors.
export { DataFeed, stepsPerEpoch } from './node/data-feed';
export { SparkFeed } from './node/spark-feed';
export type { Feed } from './node/feed';
export { tableToTensors, imagesToTensor, labelsToInt32 } from './io/arrow-tensors';
export { registerNativeKernels } from './tfjs-native';
export { TracedFunction, tracedGradients } from './tfjs-native/traced-function';
export { fitGraphStep } from './tfjs-native/graph-fit';
// tfjs itself, from the one loader (tfjs-node when its addon loads): `import { tf } from 'tfjs-on-spark'`.
export { tf, loadTfjs } from './platform/tfjs';
export type { TFNodeContext } from './node/runtime';
export type { TFClusterRunOptions } from './driver/tf-cluster';
export type { TFClusterHandle, TrainOptions, InferenceOptions, MetricsEvent } from './driver/cluster';
export type { TrainingMetrics } from './protocol/control';
