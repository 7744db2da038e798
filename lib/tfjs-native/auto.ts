/**
 * Registers the native kernels on the tfjs-node this process loads, whenever it loads it: at once
 * if it is loaded already, else right after the first require of '@tensorflow/tfjs-node' (or
 * -gpu), so importing tfjs-on-spark costs nothing in processes that never train (the driver).
 * `onLoad` is told the same moment (the trainer reports its backend and devices then).
 */
import Module = require('node:module');
import { registerNativeKernels } from './index';
import type { TF } from './native-op';

const PACKAGES = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];
const INSTALLED = Symbol.for('tfjs-on-spark.native-kernels-hook');

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;

function register(tf: TF): void {
  try {
    registerNativeKernels(tf);
  } catch (err) {
    // A bad TFOS_NATIVE_KERNELS must not stop training: tfjs's own kernels still work.
    console.error(`tfjs-on-spark: native kernels not registered: ${(err as Error).message}`);
  }
}

function loaded(): TF | undefined {
  for (const pkg of PACKAGES) {
    try {
      const cached = require.cache[require.resolve(pkg)];
      if (cached?.loaded) return cached.exports as TF;
    } catch {
      /* not installed */
    }
  }
  return undefined;
}

/** A module's exports that are tfjs itself (a package's main), not one of its files or its addon. */
function isTfjs(exports: unknown): exports is TF {
  return typeof (exports as { getBackend?: unknown } | undefined)?.getBackend === 'function';
}

export function registerNativeKernelsOnLoad(onLoad?: (tf: TF) => void): void {
  const holder = Module as unknown as { _load: Load; [INSTALLED]?: boolean };
  if (holder[INSTALLED]) return;
  holder[INSTALLED] = true;
  const found = (tf: TF): void => {
    register(tf);
    onLoad?.(tf);
  };
  const now = loaded();
  if (now) return found(now);
  const original = holder._load;
  holder._load = function load(request: string, parent: unknown, isMain: boolean) {
    const exports = original.call(this, request, parent, isMain);
    // A bare require names the package; an ESM import of it, or the GPU build in TFOS_HOME
    // (lib/platform/tfjs.ts), arrives here as a resolved file path.
    if (holder._load === load && request.includes('@tensorflow/tfjs-node')) {
      const tf = PACKAGES.includes(request) || isTfjs(exports) ? (exports as TF) : loaded();
      if (tf) {
        holder._load = original;
        found(tf);
      }
    }
    return exports;
  };
}
