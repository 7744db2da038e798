/**
 * What a trainer says once it has loaded tfjs: which build, which backend and which devices it got,
 * as one line of its output (relayed to the driver, which prints it under the node's label), e.g.
 *   worker:0 | tfos: backend tensorflow (GPU build), devices: CPU:0
 * On a machine with a GPU only the devices change: `devices: CPU:0, GPU:0 (CUDA_VISIBLE_DEVICES=1)`.
 */
import type { TF } from '../tfjs-native/native-op';

export const BACKEND_LINE_PREFIX = 'tfos: backend ';

/** The module file tfjs was loaded from (the package's main), found by its exports. */
function loadedFrom(tf: TF): string | undefined {
  for (const [file, mod] of Object.entries(require.cache)) if (mod?.exports === tf) return file;
  return undefined;
}

export function describeBackend(tf: TF, env: NodeJS.ProcessEnv = process.env): string {
  const file = loadedFrom(tf) ?? '';
  const build = file.includes('tfjs-node-gpu') ? 'GPU build' : file.includes('tfjs-node') ? 'CPU build' : 'JavaScript';
  const backend = tf.getBackend();
  // tfjs-node's backend places ops on the first GPU TensorFlow lists, if any.
  const usesGpu = (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
  const devices = ['CPU:0', ...(usesGpu ? ['GPU:0'] : [])].join(', ');
  const visible = env.CUDA_VISIBLE_DEVICES;
  return `${BACKEND_LINE_PREFIX}${backend} (${build}), devices: ${devices}${visible !== undefined && build === 'GPU build' ? ` (CUDA_VISIBLE_DEVICES=${visible})` : ''}`;
}
