/**
 * `npm run bench -- step`: one training step (batch 64, softmax cross-entropy on logits) of the
 * CIFAR-10 example's two nets (bench/step-nets.ts), in tfjs-node and in Python TensorFlow
 * (tensorflow-cpu of the version whose C library tfjs-node runs on, Keras model + tf.function),
 * alternating in one invocation. Every runner is its own process, started once and kept across
 * rounds; rounds alternate the runners so machine noise hits all of them alike.
 *
 *   step         Python TF vs stock tfjs-node vs tfjs-node with tfjs-on-spark's native kernels (also
 *                without TensorFlow's fused ops, i.e. without the binding patch)
 *   step-levers  the same plus one runner per lever (each kernel family alone, thread settings)
 *
 * Ratio = Python's ms/step ÷ tfjs's ms/step in the same round (> 1: tfjs is faster); min / median
 * / max over the rounds. On a shared machine noise only adds time, so the ratio of each runner's
 * fastest step is reported beside it. TFOS_BENCH_STEP_ROUNDS / _STEPS change the run length.
 */
import { ChildProcess, fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type * as tfTypes from '@tensorflow/tfjs';
import { tfosPaths } from '../lib/platform/paths';
import { VERSIONS } from '../lib/platform/versions';
import type { Row } from './table';
import { buildNet, NET_TITLES, NetName, NETS } from './step-nets';

interface StepRequest {
  net: NetName;
  steps: number;
  warmup: number;
}
interface StepReply {
  ms: number[];
  version?: string;
  /** tfjs kernel calls in one step (tf.profile; the native Adam's calls bypass tfjs's dispatch and are not counted). */
  kernels?: number;
  error?: string;
}

/** A tfjs runner: which kernel levers it registers and the environment it starts with. */
interface Variant {
  name: string;
  levers: string[] | 'none' | 'all';
  env?: Record<string, string>;
  /** Gradients through tracedGradients (a graph after the first calls), as the example's trainers compute them. */
  graph?: boolean;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

// ---- the tfjs runner (child process) ----------------------------------------------------------

async function childMain(): Promise<void> {
  const { tfjs: tf } = await import('../lib/platform/tfjs');
  const t = tf();
  const levers = JSON.parse(process.env.TFOS_BENCH_LEVERS ?? '"none"') as Variant['levers'];
  if (levers !== 'none') {
    const { registerNativeKernels } = await import('../lib/tfjs-native');
    registerNativeKernels(t, { only: levers === 'all' ? undefined : levers });
  }
  const graph = process.env.TFOS_BENCH_GRAPH === '1';
  const { tracedGradients } = await import('../lib/tfjs-native/traced-function');
  const nets = new Map<NetName, { run: () => Promise<void> }>();
  const prepare = (name: NetName) => {
    const { model, inputShape, optimizer: opt, labelSmoothing } = buildNet(t, name);
    const x = t.randomUniform([64, ...inputShape]);
    const y = t.oneHot(t.randomUniform([64], 0, 10, 'int32') as tfTypes.Tensor1D, 10);
    const vars = model.trainableWeights.map((w) => w.read() as tfTypes.Variable);
    // As examples/cifar10/train.ts: the loss of the logits in training mode, minimized, read back every step.
    const lossOf = (bx: tfTypes.Tensor, by: tfTypes.Tensor) =>
      t.losses.softmaxCrossEntropy(
        by,
        model.apply(bx, { training: true }) as tfTypes.Tensor,
        undefined,
        labelSmoothing || undefined,
      ) as tfTypes.Scalar;
    const gradientsOf = tracedGradients(t, lossOf);
    return {
      run: async () => {
        let l: tfTypes.Scalar;
        if (graph) {
          const { value, grads } = gradientsOf([x, y], vars);
          opt.applyGradients(grads);
          t.dispose(Object.values(grads));
          l = value;
        } else l = opt.minimize(() => lossOf(x, y), true, vars)!;
        await l.data();
        l.dispose();
      },
    };
  };
  process.on('message', async (req: StepRequest) => {
    try {
      let net = nets.get(req.net);
      if (!net) nets.set(req.net, (net = prepare(req.net)));
      const ms: number[] = [];
      for (let i = 0; i < req.warmup + req.steps; i++) {
        const t0 = process.hrtime.bigint();
        await net.run();
        if (i >= req.warmup) ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const prof = await t.profile(() => net!.run());
      process.send!({ ms, version: t.version.tfjs, kernels: prof.kernels.length } satisfies StepReply);
    } catch (err) {
      process.send!({ ms: [], error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies StepReply);
    }
  });
  process.once('disconnect', () => process.exit(0));
}

// ---- runners seen from the parent -------------------------------------------------------------

interface Runner {
  name: string;
  step(req: StepRequest): Promise<StepReply>;
  close(): void;
}

function tfjsRunner(v: Variant): Runner {
  const child: ChildProcess = fork(__filename, ['--child'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      ...v.env,
      TFOS_BENCH_LEVERS: JSON.stringify(v.levers),
      TFOS_BENCH_GRAPH: v.graph ? '1' : '0',
      TF_CPP_MIN_LOG_LEVEL: '2',
    },
  });
  let exited: Error | undefined;
  child.once('exit', (code) => (exited = new Error(`tfjs runner '${v.name}' exited (code ${code})`)));
  return {
    name: v.name,
    step: (req) =>
      new Promise((resolve, reject) => {
        if (exited) return reject(exited);
        const onExit = () => reject(exited);
        child.once('exit', onExit);
        child.once('message', (m: StepReply) => {
          child.off('exit', onExit);
          if (m.error) reject(new Error(`tfjs runner '${v.name}': ${m.error}`));
          else resolve(m);
        });
        child.send(req);
      }),
    close: () => {
      if (child.connected) child.disconnect();
    },
  };
}

/** The project's Python environment with tensorflow-cpu of VERSIONS.tensorflowWheel, installed on first use. */
async function pythonWithTensorflow(): Promise<string> {
  const py = path.join(tfosPaths().pythonEnv, 'bin', 'python');
  if (!fs.existsSync(py)) throw new Error(`no Python environment at ${py}: run \`node bin/tfos.js setup\` first`);
  const want = VERSIONS.tensorflowWheel;
  const probe = await runQuiet(py, ['-c', 'import importlib.metadata as m; print(m.version("tensorflow-cpu"))']);
  if (probe.code === 0 && probe.out.trim() === want) return py;
  console.log(`installing tensorflow-cpu==${want} into ${tfosPaths().pythonEnv} (once, for the step benchmark)`);
  const pip = await runQuiet(py, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', `tensorflow-cpu==${want}`]);
  if (pip.code !== 0) throw new Error(`pip install tensorflow-cpu==${want} failed (exit ${pip.code}): ${pip.out.slice(-2000)}`);
  return py;
}

function runQuiet(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.once('error', (e) => resolve({ code: -1, out: String(e) }));
    p.once('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

function pythonRunner(py: string, env: Record<string, string> = {}): Runner {
  const script = path.resolve(__dirname, '../../bench/step_tf.py');
  const p = spawn(py, [script], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  p.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const lines = readline.createInterface({ input: p.stdout });
  const waiting: Array<{ resolve: (r: StepReply) => void; reject: (e: Error) => void }> = [];
  lines.on('line', (l) => waiting.shift()?.resolve(JSON.parse(l) as StepReply));
  p.once('close', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`Python TF runner exited (code ${code}): ${stderr}`));
  });
  return {
    name: 'Python TF (Keras + tf.function)',
    step: (req) =>
      new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        p.stdin.write(JSON.stringify(req) + '\n');
      }),
    close: () => p.stdin.end(),
  };
}

// ---- the benchmark ----------------------------------------------------------------------------

export const STOCK: Variant = { name: 'tfjs-node (stock)', levers: 'none' };
export const NATIVE: Variant = { name: 'tfjs-node + tfjs-on-spark kernels', levers: 'all' };
/** The kernels, and the forward and backward pass as one TensorFlow graph (lib/tfjs-native/traced-function.ts). */
export const GRAPH: Variant = { name: 'kernels + graph step', levers: 'all', graph: true };

export const FUSED_OFF: Variant = { name: 'all kernels, fused TF ops off', levers: 'all', env: { TFOS_TF_FUSED_OPS: '0' } };

export function leverVariants(): Variant[] {
  return [
    { name: '+ relu-grad only', levers: ['relu-grad'] },
    { name: '+ fused-bias-act only', levers: ['fused-bias-act'] },
    { name: '+ adam only', levers: ['adam'] },
    { name: '+ softmax-xent only', levers: ['softmax-xent'] },
    { name: '+ batch-norm only', levers: ['batch-norm'] },
    { name: '+ max-pool only', levers: ['max-pool'] },
    { name: '+ conv-grad only', levers: ['conv-grad'] },
    {
      name: `all kernels, intra-op ${os.cpus().length} / inter-op 1`,
      levers: 'all',
      env: { TF_NUM_INTRAOP_THREADS: String(os.cpus().length), TF_NUM_INTEROP_THREADS: '1' },
    },
    { name: 'all kernels, intra-op 1 / inter-op 1', levers: 'all', env: { TF_NUM_INTRAOP_THREADS: '1', TF_NUM_INTEROP_THREADS: '1' } },
    { name: 'all kernels, oneDNN off', levers: 'all', env: { TF_ENABLE_ONEDNN_OPTS: '0' } },
    // What the binding patch brings: the same kernels with TensorFlow's fused Conv2D/MatMul forward unreachable.
    FUSED_OFF,
    GRAPH,
  ];
}

export interface StepBenchOptions {
  nets?: NetName[];
  variants?: Variant[];
  rounds?: number;
  steps?: number;
}

export async function benchStep(o: StepBenchOptions = {}): Promise<Row[]> {
  const nets = o.nets ?? NETS;
  // The fused-ops-off row shows what the binding patch's fused ops bring; the graph row, its graph functions.
  const variants = o.variants ?? [STOCK, FUSED_OFF, NATIVE, GRAPH];
  // Many short rounds: on a shared machine, noise comes in bursts; pairing within a round cancels it.
  const rounds = o.rounds ?? Number(process.env.TFOS_BENCH_STEP_ROUNDS ?? 5);
  const steps = o.steps ?? Number(process.env.TFOS_BENCH_STEP_STEPS ?? 5);
  const py = await pythonWithTensorflow();
  const runners = [pythonRunner(py), ...variants.map(tfjsRunner)];
  const ms = new Map<string, number[]>(); // `${net}|${runner}` → per-round medians
  const best = new Map<string, number>(); // `${net}|${runner}` → fastest single step of the run
  const info = new Map<string, StepReply>();
  try {
    for (let r = 0; r < rounds; r++) {
      for (const net of nets) {
        // Rotate the order each round, so no runner always goes first after a net switch.
        const order = runners.map((_, i) => runners[(i + r) % runners.length]);
        for (const runner of order) {
          // TensorFlow settles over its first steps (allocator, oneDNN primitive caches), in both runtimes.
          const rep = await runner.step({ net, steps, warmup: r === 0 ? 10 : 1 });
          const key = `${net}|${runner.name}`;
          (ms.get(key) ?? ms.set(key, []).get(key)!).push(median(rep.ms));
          best.set(key, Math.min(best.get(key) ?? Infinity, ...rep.ms));
          info.set(key, rep);
          console.log(`  round ${r + 1}/${rounds} ${net.padEnd(7)} ${runner.name.padEnd(40)} ${median(rep.ms).toFixed(1)} ms/step`);
        }
      }
    }
  } finally {
    for (const runner of runners) runner.close();
  }
  const rows: Row[] = [];
  for (const net of nets) {
    const pyMs = ms.get(`${net}|${runners[0].name}`)!;
    const pyBest = best.get(`${net}|${runners[0].name}`)!;
    const stockMs = ms.get(`${net}|${STOCK.name}`);
    for (const runner of runners) {
      const mine = ms.get(`${net}|${runner.name}`)!;
      const ratios = mine.map((m, i) => pyMs[i] / m);
      const vsStock = stockMs && runner.name !== STOCK.name && runner !== runners[0] ? mine.map((m, i) => stockMs[i] / m) : undefined;
      const rep = info.get(`${net}|${runner.name}`)!;
      rows.push({
        net: NET_TITLES[net],
        runner: runner.name + (rep.version ? ` ${rep.version}` : ''),
        'ms/step median': +median(mine).toFixed(1),
        'min–max': `${Math.min(...mine).toFixed(1)}–${Math.max(...mine).toFixed(1)}`,
        'img/s': Math.round((64 * 1000) / median(mine)),
        'vs Python median': runner === runners[0] ? '1' : median(ratios).toFixed(2),
        'min–max ': runner === runners[0] ? '-' : `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`,
        // Noise only ever adds time: the fastest step of each runner is the least disturbed estimate.
        'best ms/step': +best.get(`${net}|${runner.name}`)!.toFixed(1),
        'vs Python, best steps': runner === runners[0] ? '1' : (pyBest / best.get(`${net}|${runner.name}`)!).toFixed(2),
        'speed-up vs stock tfjs': vsStock
          ? `${median(vsStock).toFixed(2)} (${Math.min(...vsStock).toFixed(2)}–${Math.max(...vsStock).toFixed(2)})`
          : '-',
        'kernels/step': rep.kernels ?? '-',
      });
    }
  }
  return rows;
}

export function benchStepLevers(): Promise<Row[]> {
  return benchStep({ variants: [STOCK, ...leverVariants(), NATIVE] });
}

if (require.main === module && process.argv[2] === '--child') void childMain();
