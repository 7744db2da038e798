/**
 * From Arrow columns to tfjs tensors without intermediate JS arrays: the image column's bytes are
 * read straight out of the Arrow buffers (CHW uint8 planes) and written once, scaled, into the
 * Float32Array NHWC buffer that becomes the tensor; an int32 label column becomes a tensor over
 * the Arrow buffer itself when it is a single chunk.
 *
 * tfjs comes from the one loader, lib/platform/tfjs.ts, unless a caller passes its own (`opts.tf`).
 */
import { Data, DataType, RecordBatch, Table, Type } from 'apache-arrow';
import type * as TF from '@tensorflow/tfjs';
import { tfjs } from '../platform/tfjs';

export type Tfjs = typeof TF;

export interface ImageLayout {
  height: number;
  width: number;
  channels: number;
  /** Byte order of each stored image: CHW (CIFAR planes) or HWC (interleaved). */
  layout: 'CHW' | 'HWC';
}

export const CIFAR_LAYOUT: ImageLayout = { height: 32, width: 32, channels: 3, layout: 'CHW' };

type Columnar = Table | RecordBatch;

function chunksOf(source: Columnar, column: string): Data[] {
  const vec = source.getChild(column);
  if (!vec) throw new Error(`no column '${column}' (columns: ${source.schema.fields.map((f) => f.name).join(', ')})`);
  return vec.data as Data[];
}

/**
 * Images of a binary column (each value height·width·channels bytes) as NHWC float32 in [0, 1]
 * (value · scale), in one pass. `out` may be passed to reuse a buffer.
 */
export function imagesToFloat32(
  source: Columnar,
  opts: { column?: string; layout?: ImageLayout; scale?: number; out?: Float32Array } = {},
): Float32Array {
  const { height, width, channels, layout } = opts.layout ?? CIFAR_LAYOUT;
  const column = opts.column ?? 'image';
  const scale = opts.scale ?? 1 / 255;
  const plane = height * width;
  const size = plane * channels;
  const n = source.numRows;
  const out = opts.out ?? new Float32Array(n * size);
  if (out.length < n * size) throw new Error(`imagesToFloat32: out has ${out.length} floats, need ${n * size}`);
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) lut[v] = v * scale;
  let row = 0;
  for (const d of chunksOf(source, column)) {
    const t = d.type as DataType;
    if (t.typeId !== Type.Binary && t.typeId !== Type.LargeBinary && t.typeId !== Type.FixedSizeBinary) {
      throw new Error(`column '${column}' is ${t}, expected binary images`);
    }
    const values = d.values as Uint8Array;
    const offsets = d.valueOffsets as Int32Array | undefined;
    for (let i = 0; i < d.length; i++, row++) {
      const start = offsets ? Number(offsets[i]) : i * size; // sliced fixed-width data starts at its row 0
      const len = offsets ? Number(offsets[i + 1]) - start : size;
      if (len !== size) throw new Error(`column '${column}' row ${row}: ${len} bytes, expected ${size} (${height}x${width}x${channels})`);
      const o = row * size;
      if (layout === 'HWC') {
        for (let k = 0; k < size; k++) out[o + k] = lut[values[start + k]];
      } else if (channels === 3) {
        const g = start + plane;
        const b = start + 2 * plane;
        for (let p = 0, q = o; p < plane; p++, q += 3) {
          out[q] = lut[values[start + p]];
          out[q + 1] = lut[values[g + p]];
          out[q + 2] = lut[values[b + p]];
        }
      } else {
        for (let c = 0; c < channels; c++) {
          const src = start + c * plane;
          for (let p = 0; p < plane; p++) out[o + p * channels + c] = lut[values[src + p]];
        }
      }
    }
  }
  return out;
}

/** The label column as Int32Array: the Arrow buffer itself for one int32 chunk, else a copy. */
export function labelsToInt32(source: Columnar, column = 'label'): Int32Array {
  const chunks = chunksOf(source, column);
  if (chunks.length === 1 && (chunks[0].type as DataType).typeId === Type.Int && chunks[0].values instanceof Int32Array) {
    return (chunks[0].values as Int32Array).subarray(0, chunks[0].length);
  }
  const out = new Int32Array(source.numRows);
  let row = 0;
  for (const d of chunks) {
    const v = d.values as ArrayLike<number | bigint>;
    for (let i = 0; i < d.length; i++) out[row++] = Number(v[i]);
  }
  return out;
}

/** One-hot float32 [n, numClasses] of a label column; a label outside [0, numClasses) is an error. */
export function labelsToOneHot(source: Columnar, numClasses = 10, column = 'label'): Float32Array {
  const labels = labelsToInt32(source, column);
  const out = new Float32Array(labels.length * numClasses);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l < 0 || l >= numClasses || !Number.isInteger(l)) throw new Error(`label ${l} at row ${i} is outside [0, ${numClasses})`);
    out[i * numClasses + l] = 1;
  }
  return out;
}

export interface TensorOptions {
  imageColumn?: string;
  labelColumn?: string;
  layout?: ImageLayout;
  /** One-hot labels with this many classes (default 10); 0 = int32 class indices [n]. */
  oneHot?: number;
  tf?: Tfjs;
}

/** xs: float32 [n, h, w, c] in [0, 1]; ys: one-hot float32 [n, classes] (or int32 [n]). */
export function tableToTensors(source: Columnar, opts: TensorOptions = {}): { xs: TF.Tensor4D; ys: TF.Tensor } {
  const tf = opts.tf ?? tfjs();
  const { height, width, channels } = opts.layout ?? CIFAR_LAYOUT;
  const n = source.numRows;
  const xs = tf.tensor4d(
    imagesToFloat32(source, { column: opts.imageColumn, layout: opts.layout }),
    [n, height, width, channels],
    'float32',
  );
  const classes = opts.oneHot ?? 10;
  const ys =
    classes > 0
      ? tf.tensor2d(labelsToOneHot(source, classes, opts.labelColumn), [n, classes], 'float32')
      : tf.tensor1d(labelsToInt32(source, opts.labelColumn), 'int32');
  return { xs, ys };
}

/** Images only (inference): float32 [n, h, w, c] in [0, 1]. */
export function imagesToTensor(source: Columnar, opts: { column?: string; layout?: ImageLayout; tf?: Tfjs } = {}): TF.Tensor4D {
  const tf = opts.tf ?? tfjs();
  const { height, width, channels } = opts.layout ?? CIFAR_LAYOUT;
  return tf.tensor4d(imagesToFloat32(source, opts), [source.numRows, height, width, channels], 'float32');
}
