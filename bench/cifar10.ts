/**
 * `npm run bench -- cifar10`: the seed experiment's table on this machine. Every configuration
 * trains the CIFAR-10 example (examples/cifar10/train.ts) from scratch on the same number of
 * images, in one invocation, and reports training images/s (evaluation excluded) and the time to a
 * stated test accuracy (evaluated on the test split every `evalEvery` steps):
 *
 *   standalone tfjs-node (no Spark) · cluster of 1 worker · 2 workers all-reduce · 1 ps + 2 workers,
 *   the cluster rows in both input modes (TENSORFLOW: trainers read the dataset; SPARK: Spark feeds),
 *   and GPU rows (tfjs-node-gpu) that run only where a GPU is present.
 *
 * The cluster-of-1 row beside the standalone row is what orchestration costs.
 * Knobs (environment): TFOS_BENCH_CIFAR_MODEL (seed), TFOS_BENCH_CIFAR_STEPS (200),
 * TFOS_BENCH_CIFAR_BATCH (128), TFOS_BENCH_CIFAR_TARGET (0.35), TFOS_BENCH_CIFAR_EVAL_EVERY (50),
 * TFOS_BENCH_CIFAR_TEST_ROWS (10000), TFOS_BENCH_CIFAR_ONLY (comma-separated row keys), and the
 * dataset TFOS_BENCH_CIFAR_DATA (default: the one `npm start` ingests into TFOS_HOME).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TFCluster } from '../lib/driver/tf-cluster';
import { InputMode } from '../lib/protocol/input-mode';
import type { Row } from './table';

const TRAIN = path.resolve(__dirname, '../examples/cifar10/train.js');

interface Summary {
  steps: number;
  seconds: number;
  imagesPerSec: number;
  cpuMsPerImage?: number;
  testAccuracy: number;
  testImages: number;
  evaluations: Array<{ step: number; seconds: number; images: number; testAccuracy: number }>;
}

interface Config {
  key: string;
  label: string;
  workers: number;
  ps: number;
  mode?: InputMode;
  standalone?: boolean;
  gpu?: boolean;
}

const CONFIGS: Config[] = [
  { key: 'standalone', label: 'standalone tfjs-node (no Spark)', workers: 1, ps: 0, standalone: true },
  { key: '1w-tf', label: 'cluster of 1 worker', workers: 1, ps: 0, mode: InputMode.TENSORFLOW },
  { key: '1w-spark', label: 'cluster of 1 worker', workers: 1, ps: 0, mode: InputMode.SPARK },
  { key: '2w-tf', label: '2 workers, all-reduce', workers: 2, ps: 0, mode: InputMode.TENSORFLOW },
  { key: '2w-spark', label: '2 workers, all-reduce', workers: 2, ps: 0, mode: InputMode.SPARK },
  { key: 'ps-tf', label: '1 ps + 2 workers', workers: 2, ps: 1, mode: InputMode.TENSORFLOW },
  { key: 'ps-spark', label: '1 ps + 2 workers', workers: 2, ps: 1, mode: InputMode.SPARK },
  { key: 'gpu-1', label: '1 GPU (tfjs-node-gpu)', workers: 1, ps: 0, standalone: true, gpu: true },
  { key: 'gpu-2w', label: '2 GPU workers, all-reduce', workers: 2, ps: 0, mode: InputMode.TENSORFLOW, gpu: true },
];

function hasGpu(): boolean {
  try {
    require.resolve('@tensorflow/tfjs-node-gpu');
  } catch {
    return false;
  }
  return fs.existsSync('/dev/nvidia0');
}

function env(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
}

function timeTo(s: Summary, target: number): string | number {
  const hit = s.evaluations.find((e) => e.testAccuracy >= target);
  return hit ? +hit.seconds.toFixed(1) : `not reached (best ${(Math.max(...s.evaluations.map((e) => e.testAccuracy)) * 100).toFixed(1)}%)`;
}

function runStandalone(args: string[]): Promise<Summary> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [TRAIN, ...args],
      { maxBuffer: 64 << 20, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } },
      (err, stdout, stderr) => {
        const last = stdout
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .pop();
        if (err || !last) return reject(new Error(`standalone run failed: ${err?.message ?? 'no summary'}\n${stderr.slice(-2000)}`));
        resolve(JSON.parse(last) as Summary);
      },
    );
  });
}

async function runCluster(c: Config, args: string[], data: string, steps: number, batch: number): Promise<Summary> {
  const handle = await TFCluster.run({
    module: TRAIN,
    numExecutors: c.workers + c.ps,
    numPs: c.ps,
    inputMode: c.mode,
    // SPARK mode: Spark feeds the training split; one epoch covers the steps asked for.
    ...(c.mode === InputMode.SPARK ? { data: `file://${data}/train`, epochs: Math.max(1, Math.ceil((steps * batch) / 50_000)) } : {}),
    args,
    via: { local: {} },
    env: { TF_CPP_MIN_LOG_LEVEL: '2' },
  });
  const results = [...(await handle.shutdown({ timeout: 3600 })).values()];
  const chief = results.find((r) => r && typeof r === 'object' && 'testAccuracy' in r) as Summary | undefined;
  if (!chief) throw new Error(`${c.label}: the chief returned no summary`);
  return chief;
}

export async function benchCifar10(): Promise<Row[]> {
  const home = process.env.TFOS_HOME ?? path.join(os.homedir(), '.cache', 'tfjs-on-spark');
  const data = process.env.TFOS_BENCH_CIFAR_DATA ?? path.join(home, 'data', 'cifar10');
  if (!fs.existsSync(path.join(data, 'train', '_SUCCESS')))
    throw new Error(`no CIFAR-10 dataset at ${data}: run \`npm start\` once (it ingests it) or set TFOS_BENCH_CIFAR_DATA`);
  const model = process.env.TFOS_BENCH_CIFAR_MODEL ?? 'seed';
  const steps = env('TFOS_BENCH_CIFAR_STEPS', 200);
  const batch = env('TFOS_BENCH_CIFAR_BATCH', 128);
  const target = env('TFOS_BENCH_CIFAR_TARGET', 0.35);
  const evalEvery = env('TFOS_BENCH_CIFAR_EVAL_EVERY', 50);
  const testRows = env('TFOS_BENCH_CIFAR_TEST_ROWS', 10_000);
  const only = process.env.TFOS_BENCH_CIFAR_ONLY?.split(',').map((s) => s.trim());
  const gpu = hasGpu();
  const args = [
    '--data',
    `file://${data}`,
    '--model',
    model,
    '--max-steps',
    String(steps),
    '--epochs',
    '1000',
    '--batch',
    String(batch),
    '--eval-every',
    String(evalEvery),
    '--test-rows',
    String(testRows),
  ];
  const rows: Row[] = [];
  for (const c of CONFIGS) {
    if (only && !only.includes(c.key)) continue;
    const row: Row = {
      configuration: c.label,
      'input mode': c.standalone ? '(own reader)' : c.mode === InputMode.SPARK ? 'SPARK' : 'TENSORFLOW',
      model,
      images: steps * batch,
    };
    if (c.gpu && !gpu) {
      rows.push({ ...row, 'images/s': 'no GPU', [`s to ${(target * 100).toFixed(0)}%`]: 'no GPU', 'final test acc': 'no GPU' });
      continue;
    }
    process.stderr.write(`[bench cifar10] ${c.label} (${row['input mode']}): ${steps} steps × ${batch}\n`);
    try {
      const s = c.standalone ? await runStandalone(args) : await runCluster(c, args, data, steps, batch);
      rows.push({
        ...row,
        'images/s': s.imagesPerSec,
        'trainer CPU ms/image': s.cpuMsPerImage ?? '',
        [`s to ${(target * 100).toFixed(0)}%`]: timeTo(s, target),
        'final test acc': +(s.testAccuracy * 100).toFixed(1),
        'run s': +s.seconds.toFixed(1),
        // The machine's 1-minute load average as the row ended: what else competed for the cores.
        load: +os.loadavg()[0].toFixed(1),
      });
    } catch (err) {
      rows.push({ ...row, 'images/s': `failed: ${(err as Error).message.split('\n')[0].slice(0, 120)}` });
    }
  }
  const standalone = rows.find((r) => r.configuration === CONFIGS[0].label);
  const one = rows.find((r) => r.configuration === CONFIGS[1].label && r['input mode'] === 'TENSORFLOW');
  if (standalone && one && typeof standalone['images/s'] === 'number' && typeof one['images/s'] === 'number') {
    rows.push({
      configuration: 'orchestration cost (cluster of 1 vs standalone)',
      'images/s': `${((1 - one['images/s'] / standalone['images/s']) * 100).toFixed(1)}%`,
    });
  }
  return rows;
}
