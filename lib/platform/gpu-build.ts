/**
 * Where `tfos setup --gpu` keeps the GPU build of tfjs-node, and how a process finds it. It lives
 * under TFOS_HOME, beside (never inside) the CPU build in the project's node_modules:
 *   tfjs-node-gpu-<tfjs>/node_modules/@tensorflow/tfjs-node-gpu   the npm package, its addon built
 *                                                                 against the CUDA libtensorflow
 *   tensorflow-<tf>-cuda/                                         libtensorflow from PyPI's `tensorflow` wheel
 *   cuda-for-tensorflow-<tf>/<wheel>/nvidia/<lib>/lib             the nvidia-* wheels tensorflow[and-cuda] pins
 *   tfjs-node-gpu-<tfjs>/gpu-build.json                           written last, once the build passed its check
 * TensorFlow opens the CUDA libraries with dlopen, so they must be on the trainer's
 * LD_LIBRARY_PATH from its start (the dynamic loader reads it once): the driver puts `libraryPath`
 * there for trainers that run this build.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tfosHome } from './paths';
import { VERSIONS } from './versions';

export const GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';

export interface GpuBuildPaths {
  /** npm prefix the package is installed under. */
  root: string;
  packageDir: string;
  libtensorflow: string;
  cuda: string;
  /** The record of a finished build (GpuBuild as JSON). */
  record: string;
}

export interface GpuBuild {
  packageDir: string;
  /** Folders with the CUDA/cuDNN libraries TensorFlow opens, for LD_LIBRARY_PATH. */
  libraryPath: string[];
  tfjsNode: string;
  tensorflow: string;
  /** The nvidia-* wheels the CUDA libraries came from (name==version). */
  cudaWheels: string[];
}

export function gpuBuildPaths(env: NodeJS.ProcessEnv = process.env): GpuBuildPaths {
  const home = tfosHome(env);
  const root = path.join(home, `tfjs-node-gpu-${VERSIONS.tfjsNode}`);
  return {
    root,
    packageDir: path.join(root, 'node_modules', GPU_PACKAGE),
    libtensorflow: path.join(home, `tensorflow-${VERSIONS.tensorflowWheel}-cuda`),
    cuda: path.join(home, `cuda-for-tensorflow-${VERSIONS.tensorflowWheel}`),
    record: path.join(root, 'gpu-build.json'),
  };
}

/** The provisioned GPU build in this TFOS_HOME, or undefined when `tfos setup --gpu` has not finished here. */
export function findGpuBuild(env: NodeJS.ProcessEnv = process.env): GpuBuild | undefined {
  const { record } = gpuBuildPaths(env);
  let build: GpuBuild;
  try {
    build = JSON.parse(fs.readFileSync(record, 'utf8')) as GpuBuild;
  } catch {
    return undefined;
  }
  // A moved or half-removed cache is no build.
  if (!fs.existsSync(path.join(build.packageDir, 'package.json')) || !build.libraryPath.every((d) => fs.existsSync(d))) return undefined;
  return build;
}

/** LD_LIBRARY_PATH with the build's CUDA folders first (kept once each), then what `current` had. */
export function withLibraryPath(build: Pick<GpuBuild, 'libraryPath'>, current: string | undefined): string {
  const rest = (current ?? '').split(':').filter((d) => d && !build.libraryPath.includes(d));
  return [...build.libraryPath, ...rest].join(':');
}

/**
 * What the driver adds to the trainers' environment when the run asks for the GPU build
 * (TFOS_TFJS=gpu in its env): where the build is and its CUDA folders for LD_LIBRARY_PATH (the
 * launcher puts them before the executor's own). Nothing when the driver's TFOS_HOME has no build:
 * trainers then look in their own TFOS_HOME, and say so when they find none.
 */
export function gpuTrainerEnv(
  runEnv: Record<string, string> | undefined,
  driverEnv: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  if (runEnv?.TFOS_TFJS?.trim() !== 'gpu') return {};
  const build = findGpuBuild(driverEnv);
  if (!build) return {};
  return {
    TFOS_TFJS_GPU_PACKAGE: runEnv.TFOS_TFJS_GPU_PACKAGE ?? build.packageDir,
    LD_LIBRARY_PATH: withLibraryPath(build, runEnv.LD_LIBRARY_PATH),
  };
}
