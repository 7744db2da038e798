/**
 * tfjs-on-spark: train and serve TensorFlow.js models on Spark executors.
 *
 *   import { TFCluster, TFNode, InputMode } from 'tfjs-on-spark';
 *
 * TFCluster runs in the driver (the user's Node process); TFNode is used inside the training
 * function that each reserved executor runs.
 */
export { InputMode } from './protocol/input-mode';
export { TFCluster } from './driver/tf-cluster';
export { TFNode } from './node/tf-node';
