/**
 * Feeding throughput, HDFS → tfjs tensors in a trainer, both input modes, beside a plain
 * local-file read of the same records into tensors in this process (the upper bound), in one run.
 * Needs the local stack (`tfos stack up`) for HDFS and Spark.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generatedCifarSet, writeCifarFiles } from '../lib/io/cifar10';
import { resolveLocation } from '../lib/io/dataset-fs';
import { writeCifarDataset } from '../lib/io/dataset';
import { tableToTensors } from '../lib/io/arrow-tensors';
import { loadTfjs } from '../lib/platform/tfjs';
import { RouteOption, TFCluster } from '../lib/driver/tf-cluster';
import { formatPhases } from '../lib/driver/phases';
import { DataFeed } from '../lib/node/data-feed';
import { InputMode } from '../lib/protocol/input-mode';
import { silentLogger } from '../lib/platform/log';
import { tfosPaths } from '../lib/platform/paths';
import { provisionSpark } from '../lib/stack/spark';
import { stackStatus } from '../lib/stack/stack';
import { Row } from './table';

const RECORDS = Number(process.env.TFOS_BENCH_FEED_RECORDS ?? 20_000);
const RECORD_BYTES = 3073;
const fixture = path.resolve(__dirname, '../../test/fixtures/modules/feed-rate.js');

function row(name: string, rows: number, seconds: number, note = ''): Row {
  return {
    path: name,
    records: rows,
    seconds,
    'records/s': Math.round(rows / seconds),
    'MB/s': (rows * RECORD_BYTES) / seconds / 1e6,
    note,
  };
}

/**
 * cluster.train() → first batch in the trainer, phase by phase, for two feeds in a row on one
 * cluster (the second finds Spark warm), on the given route.
 */
async function feedStart(route: string, via: RouteOption, data: string): Promise<Row[]> {
  const feeds = 2;
  const handle = await TFCluster.run({
    module: fixture,
    numExecutors: 1,
    inputMode: InputMode.SPARK,
    args: [data, feeds],
    via,
    reservationTimeout: 300,
  });
  const rows: Row[] = [];
  try {
    for (let i = 0; i < feeds; i++) {
      const load = os.loadavg()[0];
      await handle.train(data);
      const feedId = handle.phases.events.filter((e) => e.phase === 'feed-requested').at(-1)!.feedId!;
      const phases = handle.phases.feed(feedId);
      const first = phases.find((p) => p.phase === 'first-batch');
      rows.push({
        path: `cluster.train() → first batch, ${route}, ${i === 0 ? '1st feed' : 'next feed'}`,
        records: '',
        seconds: first ? first.seconds : '–',
        note: `${formatPhases(phases, 2)} (load ${load.toFixed(1)})`,
      });
    }
    await handle.shutdown({ timeout: 600 });
  } finally {
    await handle.kill().catch(() => undefined);
  }
  return rows;
}

async function inTrainer(mode: InputMode, data: string, webhdfs: string): Promise<{ rows: number; seconds: number }> {
  const handle = await TFCluster.run({
    module: fixture,
    numExecutors: 1,
    inputMode: mode,
    args: [data],
    webhdfs,
    via: { local: {} },
    reservationTimeout: 300,
  });
  if (mode === InputMode.SPARK) await handle.train(data);
  const [r] = [...(await handle.shutdown({ timeout: 600 })).values()] as Array<{ rows: number; seconds: number }>;
  return r;
}

export async function benchFeed(): Promise<Row[]> {
  const stack = await stackStatus();
  if (!stack?.hdfs.healthy) throw new Error('the feed benchmark needs the local stack: run `tfos stack up` first');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-bench-feed-'));
  const rows: Row[] = [];
  try {
    const set = generatedCifarSet(RECORDS, { testRecords: 1000 });
    const raw = path.join(tmp, 'raw');
    await writeCifarFiles(raw, set);
    const python = (await provisionSpark(tfosPaths(), silentLogger)).python;
    const hdfsDest = `${stack.hdfs.defaultFS}/tmp/tfos-bench-feed-${process.pid}`;
    const local = path.join(tmp, 'ds');
    await writeCifarDataset(set, resolveLocation(local), { parquet: { python } });
    await writeCifarDataset(set, resolveLocation(hdfsDest, { webhdfs: stack.hdfs.webhdfs }), { parquet: { python } });

    // TFOS_BENCH_FEED=start: only the feed-start rows (section 4).
    const startOnly = process.env.TFOS_BENCH_FEED === 'start';
    // 1. Upper bound: the raw CIFAR file in this process, decoded straight into tensors.
    const { tf } = loadTfjs();
    let t0 = Date.now();
    let n = 0;
    for (const f of fs.readdirSync(raw).filter((x) => x.startsWith('data_batch') && !startOnly)) {
      const buf = fs.readFileSync(path.join(raw, f));
      const count = buf.length / RECORD_BYTES;
      const x = new Float32Array(count * 3072);
      for (let r = 0; r < count; r++) {
        const base = r * RECORD_BYTES + 1;
        for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) x[r * 3072 + p * 3 + c] = buf[base + c * 1024 + p] / 255;
      }
      tf.dispose(tf.tensor4d(x, [count, 32, 32, 3]));
      n += count;
    }
    if (!startOnly) rows.push(row('local .bin file → tensors (this process)', n, (Date.now() - t0) / 1000, 'upper bound'));

    // 2. The Arrow dataset read by a DataFeed in this process, local disk and HDFS.
    for (const [name, p] of startOnly
      ? []
      : ([
          ['local Arrow dataset → DataFeed → tensors (this process)', `${local}/train`],
          ['HDFS Arrow dataset → DataFeed → tensors (this process)', `${hdfsDest}/train`],
        ] as const)) {
      t0 = Date.now();
      const feed = await DataFeed.fromDataset(p, { webhdfs: stack.hdfs.webhdfs });
      n = 0;
      for (let t = await feed.nextBatch(500); t; t = await feed.nextBatch(500)) {
        const { xs, ys } = tableToTensors(t, { tf });
        n += t.numRows;
        tf.dispose([xs, ys]);
      }
      rows.push(row(name, n, (Date.now() - t0) / 1000));
    }

    // 3. In a trainer on the embedded local Spark: TENSORFLOW mode reads HDFS itself; SPARK mode
    //    has Spark read the Parquet from HDFS and stream Arrow batches over the data port.
    if (!startOnly) {
      const tfMode = await inTrainer(InputMode.TENSORFLOW, `${hdfsDest}/train`, stack.hdfs.webhdfs);
      rows.push(row('InputMode.TENSORFLOW: HDFS → trainer tensors', tfMode.rows, tfMode.seconds, 'trainer process, WebHDFS ranged reads'));
      const sparkMode = await inTrainer(InputMode.SPARK, `${hdfsDest}/train`, stack.hdfs.webhdfs);
      rows.push(
        row('InputMode.SPARK: HDFS → Spark → trainer tensors', sparkMode.rows, sparkMode.seconds, 'mapInArrow → Arrow IPC over TCP'),
      );
    }

    // 4. Feed start: cluster.train() → first batch, phase by phase, on the embedded and the standalone Spark.
    rows.push(...(await feedStart('local Spark', { local: {} }, `${hdfsDest}/train`)));
    if (stack.spark.healthy) {
      rows.push(...(await feedStart('standalone', { sparkSubmit: { master: stack.spark.master } }, `${hdfsDest}/train`)));
    }
    await resolveLocation(hdfsDest, { webhdfs: stack.hdfs.webhdfs }).fs.remove(hdfsDest);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}
