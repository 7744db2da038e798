/**
 * tfjs models and optimizers ⇄ files, on local disk or HDFS:
 *  - trainingState / restoreTrainingState: a model's weights (trainable and not: batch-norm
 *    moving statistics too) and its optimizer's slots as HostTensors for lib/io/checkpoints;
 *  - saveModel / loadModel: the tfjs layers format (model.json + weights.bin) that
 *    `tf.loadLayersModel` reads, written atomically (weights first, model.json renamed into place
 *    last, so a reader never sees a model.json whose weights are missing).
 */
import type * as TF from '@tensorflow/tfjs';
import { randomBytes } from 'node:crypto';
import { LocationOptions, posixJoin, resolveLocation } from './dataset-fs';
import type { Checkpoint, HostTensor } from './checkpoints';
// Models saved with this package's layers must load through loadModel, whoever imports it.
import '../layers/local-response-normalization';

type LayersModel = TF.LayersModel;
type Optimizer = TF.Optimizer;
type Tfjs = typeof TF;

function host(name: string, t: TF.Tensor): HostTensor {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new TypeError(`cannot checkpoint '${name}': dtype ${t.dtype}`);
  return { name, shape: t.shape.slice(), dtype: t.dtype, values: t.dataSync() as Float32Array | Int32Array };
}

/**
 * What holds an optimizer's state: a tf.Optimizer, or a DistributedOptimizer (whose ps-mode state
 * lives on the ps nodes).
 */
export type OptimizerState = Pick<Optimizer, 'getWeights' | 'setWeights'>;

/** Every weight of `model` and every slot of `optimizer` (when given), as host tensors. */
export async function trainingState(model: LayersModel, optimizer?: OptimizerState): Promise<Record<string, HostTensor[]>> {
  const weights = model.weights.map((w) => host(w.originalName, w.read()));
  if (!optimizer) return { weights };
  const slots = await optimizer.getWeights();
  const list = slots.map((s) => host(s.name, s.tensor));
  // Slots that are the optimizer's own variables stay; fresh tensors (the iteration count, state
  // copied from ps nodes) are ours to free.
  for (const s of slots) if (typeof (s.tensor as TF.Variable).assign !== 'function') s.tensor.dispose();
  return { weights, optimizer: list };
}

/**
 * Puts a checkpoint's weights into `model` (same architecture: matched in order, shapes checked)
 * and its optimizer slots into `optimizer` (when both have them).
 */
export async function restoreTrainingState(
  tf: Tfjs,
  model: LayersModel,
  cp: Pick<Checkpoint, 'groups' | 'uri'>,
  optimizer?: OptimizerState,
): Promise<void> {
  const saved = cp.groups.weights ?? [];
  const weights = model.weights;
  if (saved.length !== weights.length) {
    throw new Error(`checkpoint ${cp.uri} has ${saved.length} weights, the model ${weights.length}: was it written by a different model?`);
  }
  weights.forEach((w, i) => {
    const s = saved[i];
    if (s.shape.join('x') !== w.shape.join('x')) {
      throw new Error(`checkpoint ${cp.uri}: weight ${i} '${s.name}' has shape [${s.shape}], the model's '${w.originalName}' [${w.shape}]`);
    }
  });
  tf.tidy(() => weights.forEach((w, i) => w.write(tf.tensor(saved[i].values, saved[i].shape, saved[i].dtype))));
  const slots = cp.groups.optimizer;
  if (optimizer && slots?.length) {
    await optimizer.setWeights(slots.map((s) => ({ name: s.name, tensor: tf.tensor(s.values, s.shape, s.dtype) })));
  }
}

function joinWeightData(data: ArrayBuffer | ArrayBuffer[] | undefined): Buffer {
  if (!data) return Buffer.alloc(0);
  const parts = Array.isArray(data) ? data : [data];
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

/**
 * Saves `model` in the tfjs layers format to directory `uri` (local path, file://, hdfs://):
 * DIR/model.json + DIR/weights.bin. Resolves to the URI of model.json.
 */
export async function saveModel(model: LayersModel, uri: string, opts: LocationOptions = {}): Promise<string> {
  const { fs, path: dir } = resolveLocation(uri, opts);
  await fs.mkdirs(dir);
  const result = await model.save({
    save: async (artifacts) => {
      const weights = joinWeightData(artifacts.weightData as ArrayBuffer | ArrayBuffer[] | undefined);
      const json = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
      };
      const tmp = posixJoin(dir, `.model.json.tmp-${randomBytes(4).toString('hex')}`);
      await fs.writeFile(posixJoin(dir, 'weights.bin'), weights);
      await fs.writeFile(tmp, Buffer.from(JSON.stringify(json)));
      if (await fs.stat(posixJoin(dir, 'model.json'))) await fs.remove(posixJoin(dir, 'model.json'));
      await fs.rename(tmp, posixJoin(dir, 'model.json'));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.length } };
    },
  });
  if (result.errors?.length) throw new Error(`saving the model to ${uri} failed: ${result.errors.join('; ')}`);
  return fs.uri(posixJoin(dir, 'model.json'));
}

/**
 * Loads a model saved by saveModel (or any tfjs layers model directory / model.json) from a local
 * path, file:// or hdfs:// URI. Custom layers of this package (LocalResponseNormalization) are
 * registered when the package is imported.
 */
export async function loadModel(tf: Tfjs, uri: string, opts: LocationOptions = {}): Promise<LayersModel> {
  const { fs, path: p } = resolveLocation(uri, opts);
  const jsonPath = p.endsWith('.json') ? p : posixJoin(p, 'model.json');
  const dir = jsonPath.slice(0, jsonPath.lastIndexOf('/')) || '/';
  const where = fs.uri(jsonPath);
  return tf.loadLayersModel({
    load: async () => {
      let json: {
        modelTopology: object;
        weightsManifest: Array<{ paths: string[]; weights: TF.io.WeightsManifestEntry[] }>;
        format?: string;
        generatedBy?: string;
        convertedBy?: string | null;
      };
      try {
        json = JSON.parse((await fs.readFile(jsonPath)).toString('utf8'));
      } catch (err) {
        throw new Error(`cannot read the model at ${where}: ${(err as Error).message}`);
      }
      if (!json.modelTopology || !Array.isArray(json.weightsManifest))
        throw new Error(`${where} is not a tfjs layers model (no modelTopology / weightsManifest)`);
      const buffers: Buffer[] = [];
      const specs: TF.io.WeightsManifestEntry[] = [];
      for (const group of json.weightsManifest) {
        for (const file of group.paths) buffers.push(await fs.readFile(posixJoin(dir, file)));
        specs.push(...group.weights);
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: json.modelTopology,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy ?? undefined,
      };
    },
  });
}
