/**
 * Small CIFAR-shaped Parquet datasets (id, label, image) written by the Spark venv's pyarrow,
 * for feeding tests; and a reader for Parquet outputs.
 */
import { execFileSync } from 'node:child_process';
import { silentLogger } from '../../lib/platform/log';
import { tfosPaths } from '../../lib/platform/paths';
import { provisionSpark } from '../../lib/stack/spark';

export async function python(): Promise<string> {
  return (await provisionSpark(tfosPaths(), silentLogger)).python;
}

/** Writes `rows` records in `files` Parquet files under dir; label = id % 10, image[7] = id % 251. */
export async function writeParquetDataset(dir: string, rows: number, files: number): Promise<void> {
  const script = `
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
d, rows, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
per = (rows + files - 1) // files
for f in range(files):
    ids = list(range(f * per, min(rows, (f + 1) * per)))
    img = [bytes([i % 251]) * 3072 for i in ids]
    t = pa.table({'id': pa.array(ids, pa.int64()), 'label': pa.array([i % 10 for i in ids], pa.int32()), 'image': pa.array(img, pa.binary())})
    pq.write_table(t, os.path.join(d, 'part-%05d.parquet' % f), row_group_size=100)
`;
  execFileSync(await python(), ['-c', script, dir, String(rows), String(files)]);
}

/** Rows of a Parquet dataset (file or directory) as JSON objects, via pyarrow. */
export async function readParquet(p: string, columns: string[]): Promise<Array<Record<string, number>>> {
  const script = `
import sys, json, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1], columns=sys.argv[2].split(','))
print(json.dumps(t.to_pylist()))
`;
  return JSON.parse(execFileSync(await python(), ['-c', script, p, columns.join(',')], { maxBuffer: 1 << 28 }).toString());
}
