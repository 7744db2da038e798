/**
 * Parquet for the dataset writer: a long-lived Python (pyarrow) process converts each partition's
 * Arrow IPC file bytes to Parquet bytes (spark-jobs/tfos_write_parquet.py, framed JSON-line
 * protocol), so one interpreter start serves the whole ingest and conversion of partition k runs
 * while Node parses partition k+1.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tfosPaths } from '../platform/paths';

export const PARQUET_SCRIPT = path.resolve(__dirname, '../../../spark-jobs/tfos_write_parquet.py');

/** The venv Python with pyarrow that `tfos setup` provisions (undefined when not there). */
export function defaultArrowPython(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env.TFOS_ARROW_PYTHON?.trim();
  if (explicit) return explicit;
  const py = path.join(tfosPaths(env).pythonEnv, 'bin', 'python');
  return fs.existsSync(py) ? py : undefined;
}

interface Pending {
  resolve: (buf: Buffer) => void;
  reject: (err: Error) => void;
  name: string;
}

export class ParquetConverter {
  private readonly child: ChildProcessWithoutNullStreams;
  private buf: Buffer = Buffer.alloc(0);
  private queue: Pending[] = [];
  private expect: { bytes: number; rows: number } | undefined;
  private stderr = '';
  private dead: Error | undefined;

  constructor(python: string, opts: { compression?: string; script?: string } = {}) {
    const script = opts.script ?? PARQUET_SCRIPT;
    this.child = spawn(python, [script, '--compression', opts.compression ?? 'none'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.on('data', (d: Buffer) => this.onData(d));
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d: string) => {
      if (this.stderr.length < 8000) this.stderr += d;
    });
    this.child.stdin.on('error', () => {
      /* reported through 'close' */
    });
    const fail = (err: Error) => {
      this.dead ??= err;
      for (const p of this.queue.splice(0)) p.reject(new Error(`Parquet conversion of ${p.name} failed: ${err.message}`));
    };
    this.child.on('error', (err) => fail(new Error(`could not start ${python} ${script}: ${err.message}`)));
    this.child.on('close', (code, sig) =>
      fail(new Error(`pyarrow converter exited (${sig ?? code}): ${this.stderr.trim().split('\n').slice(-3).join(' | ') || 'no message'}`)),
    );
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (!this.expect) {
        const nl = this.buf.indexOf(10);
        if (nl < 0) return;
        const head = JSON.parse(this.buf.subarray(0, nl).toString('utf8')) as {
          ok: boolean;
          bytes?: number;
          rows?: number;
          error?: string;
        };
        this.buf = this.buf.subarray(nl + 1);
        if (!head.ok) {
          const p = this.queue.shift();
          p?.reject(new Error(`Parquet conversion of ${p.name} failed: ${head.error}`));
          continue;
        }
        this.expect = { bytes: head.bytes ?? 0, rows: head.rows ?? 0 };
      }
      if (this.buf.length < this.expect.bytes) return;
      const out = Buffer.from(this.buf.subarray(0, this.expect.bytes));
      this.buf = this.buf.subarray(this.expect.bytes);
      this.expect = undefined;
      this.queue.shift()?.resolve(out);
    }
  }

  /** Parquet bytes for an Arrow IPC file; requests are answered in order. */
  convert(arrowFile: Uint8Array, name: string): Promise<Buffer> {
    if (this.dead) return Promise.reject(new Error(`Parquet conversion of ${name} failed: ${this.dead.message}`));
    return new Promise<Buffer>((resolve, reject) => {
      this.queue.push({ resolve, reject, name });
      this.child.stdin.write(JSON.stringify({ name, bytes: arrowFile.byteLength }) + '\n');
      this.child.stdin.write(arrowFile);
    });
  }

  /** Ends the process (waits for it when `graceful`). */
  async close(graceful = true): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const closed = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    if (graceful) this.child.stdin.end();
    else this.child.kill('SIGKILL');
    await closed;
  }
}
