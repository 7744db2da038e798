/**
 * TensorBoard event files (`events.out.tfevents.*`) written without TensorFlow: scalar summaries
 * that `tensorboard --logdir` reads, on local disk or HDFS.
 *
 * File format (TFRecord): each record is
 *   uint64 length (LE) · uint32 masked CRC-32C of those 8 bytes · data · uint32 masked CRC-32C of data
 * where masked(c) = ((c >>> 15) | (c << 17)) + 0xa282ead8. Each record's data is a serialized
 * tensorflow.Event protobuf; the first one carries file_version "brain.Event:2". The protobuf
 * fields used (encoded by hand below):
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import { DatasetFs, LocationOptions, posixJoin, resolveLocation } from './dataset-fs';
import { ProtoWriter } from './protobuf';

// ---- CRC-32C (Castagnoli), table-driven ---------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord around `data`. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** A serialized tensorflow.Event (wall_time 1, step 2, file_version 3, summary 5 of values: tag 1, simple_value 2). */
export function encodeEvent(e: { wallTime: number; step?: number; fileVersion?: string; scalars?: Record<string, number> }): Buffer {
  const w = new ProtoWriter().double(1, e.wallTime);
  if (e.step !== undefined) w.varint(2, Math.trunc(e.step));
  if (e.fileVersion !== undefined) w.string(3, e.fileVersion);
  const scalars = e.scalars;
  if (scalars)
    w.message(5, (summary) =>
      Object.entries(scalars).forEach(([tag, v]) => summary.message(1, (value) => value.string(1, tag).float(2, v))),
    );
  return Buffer.from(w.finish());
}

// ---- the writer ------------------------------------------------------------------------------

export interface SummaryWriterOptions extends LocationOptions {
  /** Seconds between automatic flushes (default 10); flush() and close() write at once. */
  flushSecs?: number;
  /** Appended to the file name (e.g. ".chief"), as TensorFlow's filename_suffix. */
  suffix?: string;
}

/**
 * Writes scalar summaries to DIR/events.out.tfevents.<time>.<host><suffix>. On local disk new
 * records are appended; on HDFS the whole (small) file is rewritten on each flush.
 */
export class SummaryWriter {
  readonly fs: DatasetFs;
  readonly file: string;
  private readonly dir: string;
  private pending: Buffer[] = [];
  private written: Buffer[] = [];
  private timer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private started = false;
  private closed = false;

  constructor(
    logDir: string,
    private readonly opts: SummaryWriterOptions = {},
  ) {
    const loc = resolveLocation(logDir, opts);
    this.fs = loc.fs;
    this.dir = loc.path;
    this.file = posixJoin(this.dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${os.hostname()}${opts.suffix ?? ''}`);
    this.pending.push(tfRecord(encodeEvent({ wallTime: Date.now() / 1000, fileVersion: 'brain.Event:2' })));
  }

  /** URI of the event file. */
  get uri(): string {
    return this.fs.uri(this.file);
  }

  /** Records scalars (tag → value) at `step`. Non-finite values are skipped. */
  scalars(step: number, values: Record<string, number | undefined>, wallTime = Date.now() / 1000): void {
    if (this.closed) throw new Error(`SummaryWriter for ${this.uri} is closed`);
    const finite: Record<string, number> = {};
    for (const [k, v] of Object.entries(values)) if (typeof v === 'number' && Number.isFinite(v)) finite[k] = v;
    if (!Object.keys(finite).length) return;
    this.pending.push(tfRecord(encodeEvent({ wallTime, step, scalars: finite })));
    if (!this.timer) {
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          void this.flush().catch(() => undefined);
        },
        (this.opts.flushSecs ?? 10) * 1000,
      );
      this.timer.unref();
    }
  }

  /** Writes what is pending. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.writePending());
    return this.flushing;
  }

  private async writePending(): Promise<void> {
    if (!this.pending.length) return;
    const batch = this.pending;
    this.pending = [];
    if (!this.started) {
      await this.fs.mkdirs(this.dir);
      this.started = true;
    }
    if (this.fs.kind === 'local') {
      await fsp.appendFile(this.file, Buffer.concat(batch));
    } else {
      this.written.push(...batch);
      await this.fs.writeFile(this.file, Buffer.concat(this.written));
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
    this.closed = true;
  }
}
