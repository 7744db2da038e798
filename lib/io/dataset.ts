/**
 * The partitioned image dataset `tfos data` writes and the trainers read (docs/data.md).
 *
 *   DEST/_dataset.json                      what was ingested, from where, splits, classes
 *   DEST/<split>/part-0000N.parquet         Spark:  spark.read.parquet("DEST/<split>")
 *   DEST/<split>/_arrow/part-0000N.arrow    Node:   Arrow IPC file per partition (same rows)
 *   DEST/<split>/_manifest.json             partitions: rows, first id, label counts, checksums,
 *                                           Arrow record-batch byte ranges (for ranged reads)
 *   DEST/<split>/_SUCCESS
 *
 * Columns: id int64 (record index within the split, the join key for inference output),
 * label int32 (0–9), image binary (3,072 bytes, CHW uint8 planes). Names starting with `_` are
 * ignored by Spark, Hadoop input formats and pyarrow.dataset, so the Arrow copies and manifests
 * sit beside the Parquet files without disturbing Spark.
 *
 * Sharding (TENSORFLOW mode): shard s of S reads global rows [floor(s·N/S), floor((s+1)·N/S)) of
 * the split — contiguous, sizes differ by at most one, every row in exactly one shard — using the
 * manifest's byte ranges so only the needed record batches are fetched.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import {
  Binary,
  Field,
  Int32,
  Int64,
  makeData,
  RecordBatch,
  RecordBatchFileReader,
  RecordBatchFileWriter,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Schema,
  Struct,
} from 'apache-arrow';
import { CIFAR, CifarSourceSet, checkSourceSize, readCifarRecords, Split, withReadAhead } from './cifar10';
import { commitDirectory, DatasetFs, Location, posixJoin } from './dataset-fs';
import { checkedRelativePath } from './hdfs-path';
import { ParquetConverter } from './dataset-parquet';

export const DATASET_FORMAT = 'tfos-dataset';
export const DATASET_VERSION = 1;
export const MANIFEST_NAME = '_manifest.json';
export const DATASET_INFO_NAME = '_dataset.json';
const EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

export interface ImageInfo {
  height: number;
  width: number;
  channels: number;
  /** Byte order of the image column: CHW = all R, then all G, then all B (CIFAR's). */
  layout: 'CHW';
  dtype: 'uint8';
}

export const CIFAR_IMAGE: ImageInfo = { height: 32, width: 32, channels: 3, layout: 'CHW', dtype: 'uint8' };

/** Arrow schema of the dataset (the Parquet files carry the same, via pyarrow). */
export function datasetSchema(image: ImageInfo = CIFAR_IMAGE): Schema {
  return new Schema(
    [new Field('id', new Int64(), false), new Field('label', new Int32(), false), new Field('image', new Binary(), false)],
    new Map([['tfos.image', JSON.stringify(image)]]),
  );
}

export interface FileInfo {
  /** Relative to the split directory. */
  path: string;
  bytes: number;
  sha256: string;
}

export interface ArrowFileInfo extends FileInfo {
  /** One entry per record batch, in row order: byte range (metadata + body) and row count. */
  batches: { offset: number; length: number; rows: number }[];
}

export interface PartitionInfo {
  index: number;
  rows: number;
  /** id of the partition's first row; ids are consecutive. */
  firstId: number;
  /** Rows per label 0..9. */
  labelCounts: number[];
  /** SHA-256 of the partition's rows as CIFAR records (label byte + 3,072 pixels), in id order. */
  contentSha256: string;
  arrow: ArrowFileInfo;
  parquet?: FileInfo;
}

export interface SplitManifest {
  format: typeof DATASET_FORMAT;
  version: number;
  dataset: string;
  split: string;
  rows: number;
  columns: { name: string; type: string; description: string }[];
  image: ImageInfo;
  classes: string[];
  formats: ('arrow' | 'parquet')[];
  /**
   * The Arrow schema as an encapsulated IPC message (base64). A reader builds an Arrow IPC stream
   * from it + any record-batch byte ranges of the partition files + the end-of-stream marker.
   */
  arrowSchemaMessage: string;
  partitions: PartitionInfo[];
  /** SHA-256 over the partitions' contentSha256 hex strings, concatenated in order. */
  contentSha256: string;
}

export interface DatasetInfo {
  format: typeof DATASET_FORMAT;
  version: number;
  dataset: string;
  created: string;
  source: {
    kind: 'files' | 'generated';
    description: string;
    files: { split: Split; name: string; origin: string; records: number; sha256?: string }[];
  };
  classes: string[];
  image: ImageInfo;
  splits: Record<string, { path: string; rows: number; partitions: number }>;
  ingest: { seconds: number; partitionsPerSplit: number; batchRows: number; parquetCompression?: string };
}

export const COLUMNS: SplitManifest['columns'] = [
  { name: 'id', type: 'int64', description: 'record index within the split (file order); join key for inference output' },
  { name: 'label', type: 'int32', description: 'class 0–9 (classes[label])' },
  { name: 'image', type: 'binary', description: '3,072 bytes: 32×32 R plane, G plane, B plane (CHW, uint8)' },
];

// ---------------------------------------------------------------------------------------------
// Sharding
// ---------------------------------------------------------------------------------------------

/** Global rows [start, end) of shard `shard` of `numShards`: contiguous, sizes differ by ≤ 1. */
export function shardRange(totalRows: number, shard: number, numShards: number): [number, number] {
  if (!Number.isInteger(numShards) || numShards < 1) throw new Error(`numShards must be a positive integer, got ${numShards}`);
  if (!Number.isInteger(shard) || shard < 0 || shard >= numShards) throw new Error(`shard must be in [0, ${numShards}), got ${shard}`);
  return [Math.floor((shard * totalRows) / numShards), Math.floor(((shard + 1) * totalRows) / numShards)];
}

/**
 * Steps every shard can take per epoch with full batches: floor(floor(N / S) / batchSize), the
 * smallest shard's full-batch count. Synchronous trainers all run this many steps per epoch;
 * the up to batchSize shard rows beyond it are read but not trained on in that epoch
 * (with shuffle, different rows each epoch).
 */
export function stepsPerEpoch(globalRows: number, numShards: number, batchSize: number): number {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(numShards) || numShards < 1) throw new Error(`numShards must be a positive integer, got ${numShards}`);
  return Math.floor(Math.floor(globalRows / numShards) / batchSize);
}

/** A record batch of one partition's Arrow file, and the rows of it a shard takes. */
export interface ReadUnit {
  partition: number;
  /** Arrow file, relative to the split directory. */
  file: string;
  batch: number;
  offset: number;
  length: number;
  /** Rows of the whole record batch. */
  rows: number;
  /** Rows [from, to) of the record batch belong to the shard. */
  from: number;
  to: number;
  /** id of the record batch's row 0. */
  firstId: number;
}

/** The record batches (with row slices) holding shard `shard` of `numShards`, in row order. */
export function planShard(manifest: SplitManifest, shard: number, numShards: number): ReadUnit[] {
  const [start, end] = shardRange(manifest.rows, shard, numShards);
  const units: ReadUnit[] = [];
  let row = 0; // global row index of the current batch's row 0 (rows are in id order)
  for (const part of manifest.partitions) {
    const partRow = row;
    for (let b = 0; b < part.arrow.batches.length; b++) {
      const blk = part.arrow.batches[b];
      const lo = Math.max(start, row);
      const hi = Math.min(end, row + blk.rows);
      if (lo < hi) {
        units.push({
          partition: part.index,
          file: part.arrow.path,
          batch: b,
          offset: blk.offset,
          length: blk.length,
          rows: blk.rows,
          from: lo - row,
          to: hi - row,
          firstId: part.firstId + (row - partRow),
        });
      }
      row += blk.rows;
    }
  }
  return units;
}

export async function readManifest(fs: DatasetFs, splitPath: string): Promise<SplitManifest> {
  const file = posixJoin(splitPath, MANIFEST_NAME);
  let text: string;
  try {
    text = (await fs.readFile(file)).toString('utf8');
  } catch (err) {
    throw new Error(
      `${fs.uri(splitPath)} is not a tfos dataset split (cannot read ${MANIFEST_NAME}: ${(err as Error).message}); give a split directory such as DEST/train or DEST/test`,
    );
  }
  const m = JSON.parse(text) as SplitManifest;
  if (m.format !== DATASET_FORMAT || typeof m.rows !== 'number' || !Array.isArray(m.partitions)) {
    throw new Error(`${fs.uri(file)}: not a ${DATASET_FORMAT} manifest`);
  }
  if (m.version > DATASET_VERSION)
    throw new Error(`${fs.uri(file)}: manifest version ${m.version} is newer than this reader (${DATASET_VERSION})`);
  // Partition files are read relative to the split: a manifest must not point anywhere else.
  for (const [i, part] of m.partitions.entries()) {
    checkedRelativePath(part?.arrow?.path, `${fs.uri(file)} partition ${i} arrow.path`);
    if (part.parquet) checkedRelativePath(part.parquet.path, `${fs.uri(file)} partition ${i} parquet.path`);
  }
  return m;
}

export interface ReadUnitsOptions {
  /** Largest single ranged read; consecutive batches of a partition are fetched together up to this (default 8 MiB). */
  maxRangeBytes?: number;
  signal?: AbortSignal;
}

/**
 * Reads units with ranged reads (consecutive record batches of one partition in one request, the
 * schema message in another, cached per file) and yields each unit's rows as a RecordBatch slice
 * (zero-copy views into the read buffer).
 */
export async function* readUnits(
  fs: DatasetFs,
  splitPath: string,
  manifest: SplitManifest,
  units: ReadUnit[],
  opts: ReadUnitsOptions = {},
): AsyncGenerator<{ unit: ReadUnit; batch: RecordBatch }> {
  const maxRange = opts.maxRangeBytes ?? 8 << 20;
  const schema = Buffer.from(manifest.arrowSchemaMessage, 'base64');
  const parts = new Map(manifest.partitions.map((p) => [p.arrow.path, p]));
  let i = 0;
  while (i < units.length) {
    opts.signal?.throwIfAborted();
    // Group consecutive batches of the same file.
    let j = i + 1;
    let bytes = units[i].length;
    while (
      j < units.length &&
      units[j].file === units[i].file &&
      units[j].batch === units[j - 1].batch + 1 &&
      bytes + units[j].length <= maxRange
    ) {
      bytes += units[j].length;
      j++;
    }
    const group = units.slice(i, j);
    const file = posixJoin(splitPath, group[0].file);
    const info = parts.get(group[0].file)?.arrow;
    if (!info) throw new Error(`${fs.uri(file)}: not in the manifest`);
    const body = await fs.readRange(file, group[0].offset, bytes, opts.signal);
    const reader = RecordBatchReader.from(
      (function* () {
        yield schema;
        yield body;
        yield EOS;
      })(),
    );
    let k = 0;
    for (const batch of reader) {
      const unit = group[k++];
      if (!unit) throw new Error(`${fs.uri(file)}: more record batches than the manifest lists at byte ${group[0].offset}`);
      if (batch.numRows !== unit.rows) {
        throw new Error(
          `${fs.uri(file)}: record batch ${unit.batch} has ${batch.numRows} rows, the manifest says ${unit.rows} (stale manifest?)`,
        );
      }
      yield { unit, batch: unit.from === 0 && unit.to === unit.rows ? batch : batch.slice(unit.from, unit.to) };
    }
    if (k !== group.length) throw new Error(`${fs.uri(file)}: found ${k} of ${group.length} record batches at byte ${group[0].offset}`);
    i = j;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** Builds the record batches of one partition from CIFAR records appended in order. */
class PartitionBuilder {
  readonly ids: BigInt64Array;
  readonly labels: Int32Array;
  readonly images: Uint8Array;
  readonly labelCounts = new Array<number>(CIFAR.numClasses).fill(0);
  private readonly hash = createHash('sha256');
  filled = 0;

  constructor(
    readonly index: number,
    readonly firstId: number,
    readonly rows: number,
  ) {
    this.ids = new BigInt64Array(rows);
    this.labels = new Int32Array(rows);
    this.images = new Uint8Array(rows * CIFAR.imageBytes);
  }

  get full(): boolean {
    return this.filled === this.rows;
  }

  /** Appends up to `count` records from `bytes` (at record `at`); returns how many were taken. */
  append(bytes: Buffer, at: number, count: number): number {
    const R = CIFAR.recordBytes;
    const n = Math.min(count, this.rows - this.filled);
    this.hash.update(bytes.subarray(at * R, (at + n) * R));
    for (let i = 0; i < n; i++) {
      const src = (at + i) * R;
      const row = this.filled + i;
      const label = bytes[src];
      this.labels[row] = label;
      this.labelCounts[label]++;
      this.ids[row] = BigInt(this.firstId + row);
      this.images.set(bytes.subarray(src + 1, src + R), row * CIFAR.imageBytes);
    }
    this.filled += n;
    return n;
  }

  contentSha256(): string {
    return this.hash.digest('hex');
  }

  batches(schema: Schema, batchRows: number): RecordBatch[] {
    const out: RecordBatch[] = [];
    for (let s = 0; s < this.rows; s += batchRows) {
      const n = Math.min(batchRows, this.rows - s);
      out.push(
        makeImageBatch(
          schema,
          this.ids.subarray(s, s + n),
          this.labels.subarray(s, s + n),
          this.images.subarray(s * CIFAR.imageBytes, (s + n) * CIFAR.imageBytes),
          CIFAR.imageBytes,
        ),
      );
    }
    return out;
  }
}

/** A RecordBatch of (id, label, image) over existing arrays (no copies). */
export function makeImageBatch(
  schema: Schema,
  ids: BigInt64Array,
  labels: Int32Array,
  images: Uint8Array,
  imageBytes: number,
): RecordBatch {
  const n = labels.length;
  const offsets = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) offsets[i] = i * imageBytes;
  const children = [
    makeData({ type: new Int64(), length: n, nullCount: 0, data: ids }),
    makeData({ type: new Int32(), length: n, nullCount: 0, data: labels }),
    makeData({ type: new Binary(), length: n, nullCount: 0, valueOffsets: offsets, data: images }),
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children }));
}

/** The schema as one encapsulated IPC message (what starts an Arrow IPC stream). */
export function encodeSchemaMessage(schema: Schema): Uint8Array {
  const writer = new RecordBatchStreamWriter();
  writer.reset(undefined, schema);
  writer.finish();
  const bytes = writer.toUint8Array(true);
  return bytes.subarray(0, bytes.length - EOS.length); // drop the end-of-stream marker
}

/**
 * Serializes record batches as an Arrow IPC file and returns each batch's byte range (from the
 * footer). Note: apache-arrow's JS file writer puts the schema only in the footer, not at the
 * start of the stream part, which is why the manifest carries the schema message separately.
 */
export function encodeArrowFile(
  batches: RecordBatch[],
  schema: Schema,
): { bytes: Uint8Array; blocks: { offset: number; length: number; rows: number }[] } {
  const writer = new RecordBatchFileWriter();
  writer.reset(undefined, schema);
  for (const b of batches) writer.write(b);
  writer.finish();
  const bytes = writer.toUint8Array(true);
  const reader = RecordBatchFileReader.from(bytes);
  reader.open();
  const footer = reader.footer;
  if (!footer) throw new Error('Arrow file writer produced no footer');
  const blocks = [...footer.recordBatches()].map((blk, i) => ({
    offset: Number(blk.offset),
    length: blk.metaDataLength + Number(blk.bodyLength),
    rows: batches[i].numRows,
  }));
  return { bytes, blocks };
}

export interface WriteDatasetOptions {
  /** Partitions per split (default 10; fewer when a split has fewer rows). */
  partitions?: number;
  /** Rows per Arrow record batch — the unit of ranged reads and of shuffling (default 500). */
  batchRows?: number;
  /** Write Parquet (Spark) beside the Arrow files with this Python (pyarrow); false = Arrow only. */
  parquet?: { python: string; compression?: string } | false;
  /** Replace an existing destination (only after the new dataset is complete). */
  overwrite?: boolean;
  /** Records each source file must hold (10,000 for CIFAR-10 files); undefined accepts any count. */
  expectedRecordsPerFile?: number;
  /** Decompress the next source file while the current one is processed (default true). */
  readAhead?: boolean;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Test hook: called after each partition is written (e.g. to fail mid-ingest). */
  onPartition?: (split: Split, index: number) => void | Promise<void>;
}

export interface WriteDatasetResult {
  dest: string;
  seconds: number;
  splits: Record<string, { rows: number; partitions: number; arrowBytes: number; parquetBytes: number }>;
  info: DatasetInfo;
}

/**
 * Ingests a CIFAR source set into `dest` (local or HDFS): everything is written under a staging
 * directory beside DEST (`.<name>.tmp-<id>`), which is renamed to DEST only when complete and
 * removed on any failure, so a failed ingest leaves no DEST behind.
 */
export async function writeCifarDataset(set: CifarSourceSet, dest: Location, opts: WriteDatasetOptions = {}): Promise<WriteDatasetResult> {
  const started = Date.now();
  const { fs } = dest;
  const log = opts.log ?? (() => {});
  const batchRows = opts.batchRows ?? 500;
  const partitionsWanted = opts.partitions ?? 10;
  if (!Number.isInteger(batchRows) || batchRows < 1) throw new Error(`batchRows must be a positive integer, got ${batchRows}`);
  if (!Number.isInteger(partitionsWanted) || partitionsWanted < 1)
    throw new Error(`partitions must be a positive integer, got ${partitionsWanted}`);
  const destPath = dest.path.replace(/\/+$/, '') || '/';
  if (destPath === '/') throw new Error('refusing to write a dataset at the root of a file system');

  // Fail fast on sizes (truncated files are found before any work).
  const sizes = new Map<string, number>();
  for (const src of [...set.train, ...set.test]) sizes.set(src.name, checkSourceSize(src, opts.expectedRecordsPerFile));

  const existing = await fs.stat(destPath);
  if (existing && !opts.overwrite) throw new Error(`${fs.uri(destPath)} already exists (use --overwrite to replace it)`);
  const parent = path.posix.dirname(destPath);
  const staging = posixJoin(parent, `.${path.posix.basename(destPath)}.tmp-${randomBytes(4).toString('hex')}`);
  const converter = opts.parquet ? new ParquetConverter(opts.parquet.python, { compression: opts.parquet.compression }) : undefined;
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const schema = datasetSchema();
  const result: WriteDatasetResult['splits'] = {};
  const fileList: DatasetInfo['source']['files'] = [];
  const writes: Promise<void>[] = []; // every partition write, to settle before cleaning up

  try {
    await fs.mkdirs(staging);
    const all = [...set.train, ...set.test];
    const ahead = opts.readAhead === false ? all : withReadAhead(all, abort.signal);
    for (const split of ['train', 'test'] as const) {
      const sources = ahead.slice(split === 'train' ? 0 : set.train.length, split === 'train' ? set.train.length : undefined);
      const total = sources.reduce((a, s) => a + (sizes.get(s.name) ?? 0), 0);
      const P = Math.max(1, Math.min(partitionsWanted, total));
      const splitDir = posixJoin(staging, split);
      await fs.mkdirs(posixJoin(splitDir, '_arrow'));
      const bounds = Array.from({ length: P + 1 }, (_, p) => Math.floor((p * total) / P));
      const parts: PartitionInfo[] = [];
      const inflight: Promise<void>[] = [];
      let arrowBytes = 0;
      let parquetBytes = 0;

      const flush = (b: PartitionBuilder): Promise<void> => {
        const name = `part-${String(b.index).padStart(5, '0')}`;
        const enc = encodeArrowFile(b.batches(schema, batchRows), schema);
        const contentSha256 = b.contentSha256();
        const info: PartitionInfo = {
          index: b.index,
          rows: b.rows,
          firstId: b.firstId,
          labelCounts: b.labelCounts,
          contentSha256,
          arrow: { path: `_arrow/${name}.arrow`, bytes: enc.bytes.byteLength, sha256: sha256(enc.bytes), batches: enc.blocks },
        };
        parts[b.index] = info;
        arrowBytes += enc.bytes.byteLength;
        return (async () => {
          const parquet = converter?.convert(enc.bytes, `${split}/${name}`);
          parquet?.catch(() => {}); // awaited below; no unhandled rejection while the Arrow file is written
          await fs.writeFile(posixJoin(splitDir, info.arrow.path), enc.bytes);
          if (parquet) {
            const pq = await parquet;
            info.parquet = { path: `${name}.parquet`, bytes: pq.length, sha256: sha256(pq) };
            parquetBytes += pq.length;
            await fs.writeFile(posixJoin(splitDir, info.parquet.path), pq);
          }
          await opts.onPartition?.(split, b.index);
        })();
      };

      let p = 0;
      let builder = P > 0 && total > 0 ? new PartitionBuilder(0, 0, bounds[1] - bounds[0]) : undefined;
      for (const src of sources) {
        const fileHash = src.expectedSha256;
        fileList.push({ split, name: src.name, origin: src.origin, records: sizes.get(src.name) ?? 0, sha256: fileHash });
        for await (const chunk of readCifarRecords(src, { expectedRecords: opts.expectedRecordsPerFile, signal: abort.signal })) {
          let at = 0;
          while (at < chunk.count) {
            if (!builder) throw new Error(`${src.name}: more records than announced`);
            at += builder.append(chunk.bytes, at, chunk.count - at);
            if (builder.full) {
              const w = flush(builder);
              w.catch(() => {}); // handled when awaited below; avoids an unhandled rejection meanwhile
              writes.push(w);
              inflight.push(w);
              // Bounded overlap: at most two partitions being written while the next is parsed.
              if (inflight.length >= 2) await inflight.shift();
              p++;
              builder = p < P ? new PartitionBuilder(p, bounds[p], bounds[p + 1] - bounds[p]) : undefined;
            }
          }
        }
        log(`${split}: read ${src.name} (${sizes.get(src.name)} records) from ${src.origin}`);
      }
      await Promise.all(inflight);
      if (total === 0) parts.length = 0;
      const manifest: SplitManifest = {
        format: DATASET_FORMAT,
        version: DATASET_VERSION,
        dataset: 'cifar10',
        split,
        rows: total,
        columns: COLUMNS,
        image: CIFAR_IMAGE,
        classes: set.classes,
        formats: converter ? ['parquet', 'arrow'] : ['arrow'],
        arrowSchemaMessage: Buffer.from(encodeSchemaMessage(schema)).toString('base64'),
        partitions: parts,
        contentSha256: sha256(Buffer.from(parts.map((x) => x.contentSha256).join(''))),
      };
      await fs.writeFile(posixJoin(splitDir, MANIFEST_NAME), Buffer.from(JSON.stringify(manifest, null, 1) + '\n'));
      await fs.writeFile(posixJoin(splitDir, '_SUCCESS'), new Uint8Array(0));
      result[split] = { rows: total, partitions: parts.length, arrowBytes, parquetBytes };
      log(
        `${split}: ${total} rows in ${parts.length} partitions (${(arrowBytes / 1e6).toFixed(1)} MB Arrow${converter ? `, ${(parquetBytes / 1e6).toFixed(1)} MB Parquet` : ''})`,
      );
    }
    const info: DatasetInfo = {
      format: DATASET_FORMAT,
      version: DATASET_VERSION,
      dataset: 'cifar10',
      created: new Date().toISOString(),
      source: { kind: set.kind, description: set.description, files: fileList },
      classes: set.classes,
      image: CIFAR_IMAGE,
      splits: Object.fromEntries(Object.entries(result).map(([k, v]) => [k, { path: k, rows: v.rows, partitions: v.partitions }])),
      ingest: {
        seconds: (Date.now() - started) / 1000,
        partitionsPerSplit: partitionsWanted,
        batchRows,
        parquetCompression: opts.parquet ? (opts.parquet.compression ?? 'none') : undefined,
      },
    };
    await fs.writeFile(posixJoin(staging, DATASET_INFO_NAME), Buffer.from(JSON.stringify(info, null, 1) + '\n'));
    await converter?.close();
    // The old copy (--overwrite) is removed only once the new one is in place.
    await commitDirectory(fs, staging, destPath, Boolean(existing));
    return { dest: fs.uri(destPath), seconds: (Date.now() - started) / 1000, splits: result, info };
  } catch (err) {
    abort.abort(err);
    await converter?.close(false).catch(() => {});
    await Promise.allSettled(writes);
    await fs.remove(staging).catch(() => {});
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
