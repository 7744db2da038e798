/**
 * Full CIFAR-10 ingest (60,000 records → Arrow + Parquet), to local disk and to the local stack's
 * HDFS, side by side in one run. Uses the real set (../shared/datasets/cifar10 or
 * TFOS_CIFAR10_DIR) when present, else a generated set of the same size.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findCifarFiles, generatedCifarSet } from '../lib/io/cifar10';
import { resolveLocation } from '../lib/io/dataset-fs';
import { writeCifarDataset } from '../lib/io/dataset';
import { silentLogger } from '../lib/platform/log';
import { tfosPaths } from '../lib/platform/paths';
import { provisionSpark } from '../lib/stack/spark';
import { stackStatus } from '../lib/stack/stack';
import { Row } from './table';

const RECORD_BYTES = 3073;

export async function benchIngest(): Promise<Row[]> {
  const stack = await stackStatus();
  if (!stack?.hdfs.healthy) throw new Error('the ingest benchmark needs the local stack: run `tfos stack up` first');
  const dir = process.env.TFOS_CIFAR10_DIR?.trim() || path.resolve(__dirname, '../../../shared/datasets/cifar10');
  const real = fs.existsSync(dir) ? findCifarFiles(dir).set : undefined;
  const set = real ?? generatedCifarSet(50_000, { testRecords: 10_000 });
  const source = real ? `real set (${dir})` : 'generated set';
  const python = (await provisionSpark(tfosPaths(), silentLogger)).python;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-bench-ingest-'));
  const hdfsDest = `${stack.hdfs.defaultFS}/tmp/tfos-bench-ingest-${process.pid}`;
  const rows: Row[] = [];
  try {
    for (const [name, dest, webhdfs] of [
      ['CIFAR-10 → local Arrow + Parquet', path.join(tmp, 'ds'), undefined],
      ['CIFAR-10 → HDFS Arrow + Parquet', hdfsDest, stack.hdfs.webhdfs],
    ] as const) {
      const res = await writeCifarDataset(set, resolveLocation(dest, { webhdfs }), {
        parquet: { python },
        expectedRecordsPerFile: real ? 10_000 : undefined,
      });
      const records = res.splits.train.rows + res.splits.test.rows;
      rows.push({
        path: name,
        records,
        seconds: res.seconds,
        'records/s': Math.round(records / res.seconds),
        'MB/s': (records * RECORD_BYTES) / res.seconds / 1e6,
        note: source,
      });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    await resolveLocation(hdfsDest, { webhdfs: stack.hdfs.webhdfs })
      .fs.remove(hdfsDest)
      .catch(() => undefined);
  }
  return rows;
}
