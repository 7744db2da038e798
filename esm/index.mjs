// ESM entry: re-exports the CommonJS build so that `import { TFCluster } from 'tfjs-on-spark'` and
// `require('tfjs-on-spark')` see the very same objects (one module instance, no dual-package hazard).
import lib from '../dist/lib/index.js';

export const {
  TFCluster,
  TFNode,
  InputMode,
  DataFeed,
  stepsPerEpoch,
  SparkFeed,
  tableToTensors,
  imagesToTensor,
  labelsToInt32,
  registerNativeKernels,
  TracedFunction,
  tracedGradients,
  fitGraphStep,
  LocalResponseNormalization,
  localResponseNormalization,
  Checkpoints,
  CheckpointError,
  trainingState,
  restoreTrainingState,
  saveModel,
  loadModel,
  SummaryWriter,
  renderTrainingPlot,
  trainingPlotSpec,
  TrainingProgress,
  tf,
  loadTfjs,
} = lib;
export default lib;
