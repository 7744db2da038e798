/**
 * Image preprocessing of the CIFAR-10 example, in plain loops over Float32Arrays (a batch is a few
 * hundred thousand floats: cheaper than a chain of small tensor ops).
 *
 *  seed net (the tutorial's inputs): training — random 24×24 crop, random mirror, random
 *    brightness (±63/255), random contrast (×0.2…1.8), per-image standardisation; evaluation —
 *    the centre 24×24 crop, standardised.
 *  fast net: training — 4-pixel reflect padding, random 32×32 crop, random mirror, standardised
 *    with the dataset's channel means and deviations; evaluation — the whole image.
 *
 * Randomness comes from a generator seeded by (seed, worker, step), so a resumed run draws the
 * same augmentations as an uninterrupted one: the data position is the step.
 */
import type { ModelRecipe } from './models';

const SRC = 32;
const C = 3;
const CHANNEL_MEAN = [0.4914, 0.4822, 0.4465];
const CHANNEL_STD = [0.247, 0.2435, 0.2616];

/** A small seeded generator (mulberry32) returning floats in [0, 1). */
export function rng(...seeds: number[]): () => number {
  let a = 0x9e3779b9;
  for (const s of seeds) a = Math.imul(a ^ (s >>> 0), 0x85ebca6b) ^ (a >>> 13);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `images`: n NHWC 32×32×3 images scaled to [0, 1]. Returns n images of recipe.imageSize², ready
 * for the net. `random` present: training augmentation; absent: evaluation preprocessing
 * (`mirror` flips every image, for test-time augmentation).
 */
export function preprocess(
  images: Float32Array,
  n: number,
  recipe: Pick<ModelRecipe, 'name' | 'imageSize'>,
  random?: () => number,
  mirror = false,
): Float32Array {
  const S = recipe.imageSize;
  const out = new Float32Array(n * S * S * C);
  const pad = recipe.name === 'fast' && random ? 4 : 0;
  for (let i = 0; i < n; i++) {
    const src = i * SRC * SRC * C;
    const dst = i * S * S * C;
    // Top-left corner of the crop in the (padded) source; padding reflects at the borders.
    const span = SRC + 2 * pad - S;
    const oy = random ? Math.floor(random() * (span + 1)) - pad : (SRC - S) >> 1;
    const ox = random ? Math.floor(random() * (span + 1)) - pad : (SRC - S) >> 1;
    const flip = random ? random() < 0.5 : mirror;
    for (let y = 0; y < S; y++) {
      const sy = reflect(oy + y);
      for (let x = 0; x < S; x++) {
        const sx = reflect(flip ? ox + S - 1 - x : ox + x);
        const s = src + (sy * SRC + sx) * C;
        const d = dst + (y * S + x) * C;
        out[d] = images[s];
        out[d + 1] = images[s + 1];
        out[d + 2] = images[s + 2];
      }
    }
    const img = out.subarray(dst, dst + S * S * C);
    if (recipe.name === 'seed') {
      if (random) {
        const delta = (random() * 2 - 1) * (63 / 255);
        const factor = 0.2 + random() * 1.6;
        adjustBrightnessContrast(img, delta, factor);
      }
      standardizePerImage(img);
    } else {
      for (let p = 0; p < img.length; p += 3) {
        for (let c = 0; c < 3; c++) img[p + c] = (img[p + c] - CHANNEL_MEAN[c]) / CHANNEL_STD[c];
      }
    }
  }
  return out;
}

function reflect(i: number): number {
  if (i < 0) return -i;
  if (i >= SRC) return 2 * SRC - 2 - i;
  return i;
}

/** tf.image.random_brightness then random_contrast (per-channel mean kept). */
function adjustBrightnessContrast(img: Float32Array, delta: number, factor: number): void {
  const mean = [0, 0, 0];
  for (let p = 0; p < img.length; p += 3) for (let c = 0; c < 3; c++) mean[c] += img[p + c] += delta;
  const pixels = img.length / 3;
  for (let c = 0; c < 3; c++) mean[c] /= pixels;
  for (let p = 0; p < img.length; p += 3) for (let c = 0; c < 3; c++) img[p + c] = (img[p + c] - mean[c]) * factor + mean[c];
}

/** tf.image.per_image_standardization: zero mean, unit variance (floored at 1/√N). */
function standardizePerImage(img: Float32Array): void {
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < img.length; i++) {
    sum += img[i];
    sq += img[i] * img[i];
  }
  const mean = sum / img.length;
  const std = Math.max(Math.sqrt(Math.max(0, sq / img.length - mean * mean)), 1 / Math.sqrt(img.length));
  for (let i = 0; i < img.length; i++) img[i] = (img[i] - mean) / std;
}
