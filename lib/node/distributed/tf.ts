/**
 * Lazy TensorFlow.js loader for the distributed layer. Prefers '@tensorflow/tfjs-node' (native
 * kernels) when its addon loads, else falls back to the pure-JS '@tensorflow/tfjs' (cpu backend).
 * Nothing is loaded until a function here is called, so collectives and the ps transport work in
 * processes that never touch TensorFlow. TFOS_TFJS=tfjs forces the pure-JS package.
 */
import type * as tfTypes from '@tensorflow/tfjs';

export type TF = typeof tfTypes;

let cached: TF | undefined;
let source = '';

export function tf(): TF {
  if (cached) return cached;
  if (process.env.TFOS_TFJS !== 'tfjs') {
    try {
      cached = require('@tensorflow/tfjs-node') as TF;
      source = '@tensorflow/tfjs-node';
      return cached;
    } catch {
      /* native addon not built or not installed: use the pure-JS package */
    }
  }
  cached = require('@tensorflow/tfjs') as TF;
  source = '@tensorflow/tfjs';
  return cached;
}

/** Which package tf() loaded ('' before the first call). */
export function tfSource(): string {
  return source;
}
