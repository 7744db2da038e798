/**
 * allReduce throughput and training-step overhead of the distributed layer, on loopback.
 *
 * Every node is its own child process (fork of this file with --child), as in a real cluster:
 * on a small machine in-process nodes would share one JS thread and measure that thread instead.
 * Raw loopback TCP throughput between two processes is the ceiling, measured in the same run just
 * before each worker count's collectives (on a shared machine the wire's speed drifts with the load;
 * each ratio is against the measurement next to it). Beside it, the wire a ring really uses: N
 * processes each sending to the next while receiving from the previous, all at once. On a machine
 * with fewer cores than 2 × N, that is what bounds a ring all-reduce (each worker does a sender's
 * and a receiver's copying), where one stream gets a whole core on each end. That ring runs twice:
 * per size with the all-reduce's own transfers from and into a buffer of its size (`raw ring`),
 * and once with one cached chunk (`cached ring`, the kernel's copies at cache speed).
 *
 *   node dist/bench/allreduce.js            prints the markdown table
 *   npm run bench -- allreduce              same, through bench/main.ts
 *
 * Columns: `algbw` = buffer bytes / time (what a caller sees); `busbw` = algbw × 2(N−1)/N, the
 * bytes each worker actually sends per second in a ring, comparable to the raw TCP figure.
 */
import { ChildProcess, fork } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import type * as tfTypes from '@tensorflow/tfjs';
import type { ClusterSpec, JobName } from '../lib/protocol/control';
import type { ClusterServer } from '../lib/node/cluster-server';
import { localContext } from '../test/support/local-context';
import { DistributedOptimizer } from '../lib/node/distributed/optimizer';
import { floatKernelImplementation, reduceBuffer } from '../lib/node/distributed/float-kernels';
import { DEFAULT_CHUNK_BYTES } from '../lib/node/distributed/group';
import { loadTfjs, tfjs as tf } from '../lib/platform/tfjs';
import { TFNode } from '../lib/node/tf-node';
import type { Row } from './table';

export interface AllreduceBenchOptions {
  /** Float counts to reduce. */
  sizes?: number[];
  /** Worker counts. */
  workers?: number[];
  /** Bytes for the raw TCP measurement. */
  tcpBytes?: number;
  /** Run the training-step measurement. */
  training?: boolean;
  /** Timed repetitions per size (default: by size). */
  reps?: number;
  trainSteps?: number;
  /** Collective chunk size (default: the library's, DEFAULT_CHUNK_BYTES). */
  chunkBytes?: number;
  /** Float counts also reduced from a plain Float32Array, beside the reduceBuffer rows (default: 4 M). */
  plainSizes?: number[];
}

type Task =
  | { kind: 'allreduce'; floats: number; reps: number; warmup: number; buffer: BufferKind }
  | { kind: 'train'; mode: 'local' | 'allreduce' | 'ps'; steps: number; warmup: number; batch: number };

interface ChildSetup {
  spec: ClusterSpec;
  job: JobName;
  index: number;
  secret: string;
  tasks: Task[];
  chunkBytes?: number;
}

/**
 * What the reduced buffer is: `reduce`, from the library's reduceBuffer() as the distributed
 * optimizer's fused gradients are (sums in place); `plain`, a Float32Array of the caller's (sums
 * staged through the kernel's memory).
 */
type BufferKind = 'reduce' | 'plain';

type TaskResult = { times?: number[]; cpuMs?: number; msPerStep?: number; params?: number; backend?: string };

const MB = 1e6;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

// ---- child side -----------------------------------------------------------------------------

function listen(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0 }, () => resolve(s));
  });
}

function nextMessage<T>(): Promise<T> {
  return new Promise((resolve) => process.once('message', (m) => resolve(m as T)));
}

/** MLP 784-128-10 (101 770 parameters), the "small model" of the overhead measurement. */
function smallModel(t: typeof tfTypes): tfTypes.Sequential {
  const m = t.sequential();
  m.add(
    t.layers.dense({ inputShape: [784], units: 128, activation: 'relu', kernelInitializer: t.initializers.glorotUniform({ seed: 1 }) }),
  );
  m.add(t.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: t.initializers.glorotUniform({ seed: 2 }) }));
  return m;
}

async function runTask(server: ClusterServer, task: Task): Promise<TaskResult> {
  if (task.kind === 'allreduce') {
    const buf = (task.buffer === 'plain' ? new Float32Array(task.floats) : reduceBuffer(task.floats)).fill(1);
    const times: number[] = [];
    let cpu = 0;
    for (let i = 0; i < task.warmup + task.reps; i++) {
      await server.barrier();
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      await server.allReduce(buf, 'sum');
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const c = process.cpuUsage(c0);
      if (i >= task.warmup) {
        times.push(ms);
        cpu += (c.user + c.system) / 1000;
      }
    }
    return { times, cpuMs: cpu / task.reps };
  }
  const t = tf();
  const model = smallModel(t);
  const vars = model.trainableWeights.map((w) => w.read() as tfTypes.Variable);
  const x = t.randomUniform([task.batch, 784]);
  const y = t.oneHot(t.randomUniform([task.batch], 0, 10, 'int32') as tfTypes.Tensor1D, 10);
  const loss = () => t.losses.softmaxCrossEntropy(y, model.apply(x) as tfTypes.Tensor) as tfTypes.Scalar;
  const local = t.train.adam(1e-3);
  const dist = task.mode === 'local' ? undefined : new DistributedOptimizer(server, t.train.adam(1e-3), { mode: task.mode });
  if (dist) await dist.init(vars);
  const step = async () => {
    if (dist) await dist.minimize(loss, false, vars);
    else local.minimize(loss, false, vars);
  };
  for (let i = 0; i < task.warmup; i++) await step();
  await server.barrier();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < task.steps; i++) await step();
  const msPerStep = Number(process.hrtime.bigint() - t0) / 1e6 / task.steps;
  await server.barrier();
  return { msPerStep, params: vars.reduce((n, v) => n + v.size, 0), backend: `${loadTfjs().package} (${t.getBackend()})` };
}

async function childMain(): Promise<void> {
  const listener = await listen();
  process.send!({ port: (listener.address() as net.AddressInfo).port });
  const setup = await nextMessage<ChildSetup>();
  const ctx = localContext({ clusterSpec: setup.spec, jobName: setup.job, taskIndex: setup.index, listener, secret: setup.secret });
  const { server } = await TFNode.startClusterServer(ctx, { timeoutMs: 120_000, chunkBytes: setup.chunkBytes });
  if (setup.job !== 'ps') {
    const results: TaskResult[] = [];
    for (const task of setup.tasks) results.push(await runTask(server, task));
    // Everyone is done before anyone may exit (no peer left with unread data).
    await server.barrier();
    process.send!({ results });
  }
  // Serve (ps) / stay connected until the parent lets go.
  await new Promise((r) => process.once('disconnect', r));
  await server.close();
  process.exit(0);
}

/**
 * Raw receivers read the way the collectives do (auth.ts, DIALED_READ_BYTES): on a socket they
 * dialed, into one reused buffer (or where `nextBuffer` says, read by read). Node's default 'data' reading costs about three times the CPU
 * per byte, so a baseline built on it would flatter every ratio against it.
 */
function dialReceiver(port: number, onBytes: (n: number) => void, nextBuffer?: () => Uint8Array): Promise<net.Socket> {
  const buffer = nextBuffer ?? Buffer.allocUnsafe(256 << 10);
  const sock = net.connect({
    port,
    host: '127.0.0.1',
    onread: {
      buffer,
      callback: (n: number) => {
        onBytes(n);
        return true;
      },
    },
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.once('connect', () => resolve(sock));
  });
}

/** Receiving end of the one-stream measurement: dials the parent, acknowledges every `bytes` received with one byte. */
async function sinkMain(): Promise<void> {
  process.send!({ port: 0 }); // spawnChild waits for a first message; this child listens on nothing
  const { port, bytes } = await nextMessage<{ port: number; bytes: number }>();
  let got = 0;
  let acked = 0;
  const sock = await dialReceiver(port, (n) => {
    got += n;
    while (got - acked >= bytes) {
      acked += bytes;
      sock.write(Buffer.of(1));
    }
  });
  await new Promise((r) => process.once('disconnect', r));
  sock.destroy();
  process.exit(0);
}

/**
 * One member of a raw TCP ring: sends `bytes` to the next member while receiving as many from
 * the previous. Like the collectives, it receives on the connection it dials (to the previous
 * member) and sends on the one the next member dialed.
 *
 * Without `footprint` it sends one 4 MiB chunk over and over and receives into one 256 KiB
 * buffer, both hot in the core's cache. With it, it sends from and receives into one buffer of
 * `footprint` bytes, in pieces of `chunk` bytes, wrapping around: the memory an all-reduce of
 * that buffer moves its bytes from and into (the kernel's copies run at memory speed, not cache
 * speed: about a fifth slower for 16.8 MB on the development VM).
 */
async function ringMain(): Promise<void> {
  let next: net.Socket | undefined;
  let arrived: () => void = () => undefined;
  const connected = new Promise<void>((r) => (arrived = r));
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    next = sock;
    arrived();
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  process.send!({ port: (server.address() as net.AddressInfo).port });
  const setup = await nextMessage<{ prev: number; bytes: number; footprint?: number; chunk?: number }>();
  const { prev: prevPort, bytes } = setup;
  const readBytes = 256 << 10;
  const memory = setup.footprint ? Buffer.alloc(setup.footprint + readBytes, 1) : Buffer.alloc(4 << 20, 1);
  const span = setup.footprint ?? 0;
  const chunk = setup.footprint ? (setup.chunk ?? 1 << 20) : memory.length;
  let readAt = 0;
  let got = 0;
  let due = 0;
  let onDue: () => void = () => undefined;
  const prev = await dialReceiver(
    prevPort,
    (n) => {
      got += n;
      readAt = span ? (readAt + n) % span : 0;
      if (got >= due) {
        const settle = onDue;
        onDue = () => undefined;
        settle();
      }
    },
    span ? () => memory.subarray(readAt, readAt + readBytes) : undefined,
  );
  await connected;
  process.send!({ ready: true });
  for (;;) {
    const msg = await nextMessage<{ go?: boolean; stop?: boolean }>();
    if (msg.stop) break;
    due += bytes;
    const received = new Promise<void>((resolve) => {
      if (got >= due) resolve();
      else onDue = resolve;
    });
    const t0 = process.hrtime.bigint();
    for (let sent = 0; sent < bytes;) {
      const at = span ? sent % span : 0;
      const n = Math.min(chunk, bytes - sent, span ? span - at : chunk);
      sent += n;
      if (!next!.write(memory.subarray(at, at + n))) await new Promise((r) => next!.once('drain', r));
    }
    await received;
    process.send!({ ms: Number(process.hrtime.bigint() - t0) / 1e6 });
  }
  next?.destroy();
  prev.destroy();
  server.close();
  process.exit(0);
}

// ---- parent side ----------------------------------------------------------------------------

function spawnChild(mode: '--child' | '--sink' | '--ring'): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(__filename, [mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench child exited early (code ${code})`)));
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port }));
  });
}

/** One-way loopback TCP throughput between this process and a child, best of 3, in MB/s. */
async function rawTcp(bytes: number): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const { child } = await spawnChild('--sink');
  const chunk = Buffer.alloc(4 << 20, 1);
  const rates: number[] = [];
  try {
    child.send({ port: (server.address() as net.AddressInfo).port, bytes });
    const sock = await accepted;
    sock.setNoDelay(true);
    for (let rep = 0; rep < 3; rep++) {
      const done = new Promise<void>((r) => sock.once('data', () => r()));
      const t0 = process.hrtime.bigint();
      for (let sent = 0; sent < bytes; sent += chunk.length) {
        if (!sock.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)))) await new Promise((r) => sock.once('drain', r));
      }
      await done;
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      rates.push(bytes / MB / s);
    }
    sock.destroy();
  } finally {
    child.disconnect();
    server.close();
  }
  return Math.max(...rates);
}

/**
 * Per-member send throughput of a raw TCP ring of `n` processes, every link busy at once, best of
 * 3, in MB/s: the wire a ring all-reduce of `n` workers moves its bytes over. With `footprint`,
 * each member sends and receives from and into one buffer of that many bytes (ringMain).
 */
async function rawRing(n: number, bytes: number, memory?: { footprint: number; chunk: number }): Promise<number> {
  const kids = await Promise.all(Array.from({ length: n }, () => spawnChild('--ring')));
  const reply = <T>(i: number) => new Promise<T>((r) => kids[i].child.once('message', (m) => r(m as T)));
  try {
    const ready = kids.map((_, i) => reply(i));
    kids.forEach((k, i) => k.child.send({ prev: kids[(i - 1 + n) % n].port, bytes, ...memory }));
    await Promise.all(ready);
    const rates: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const done = kids.map((_, i) => reply<{ ms: number }>(i));
      for (const k of kids) k.child.send({ go: true });
      const slowest = Math.max(...(await Promise.all(done)).map((d) => d.ms));
      rates.push(bytes / MB / (slowest / 1000));
    }
    return Math.max(...rates);
  } finally {
    for (const k of kids) {
      k.child.removeAllListeners('exit');
      if (k.child.connected) k.child.send({ stop: true }, () => k.child.connected && k.child.disconnect());
    }
  }
}

/** Runs `tasks` on a cluster of child processes; resolves to the results of every worker. */
async function onCluster(numWorkers: number, numPs: number, tasks: Task[], chunkBytes?: number): Promise<TaskResult[][]> {
  const roles: Array<{ job: JobName; index: number }> = [];
  for (let i = 0; i < numPs; i++) roles.push({ job: 'ps', index: i });
  roles.push({ job: 'chief', index: 0 });
  for (let i = 1; i < numWorkers; i++) roles.push({ job: 'worker', index: i - 1 });
  const kids = await Promise.all(roles.map(() => spawnChild('--child')));
  try {
    const spec: ClusterSpec = { ps: [], chief: [], worker: [] };
    roles.forEach((r, i) => ((spec[r.job] ??= [])[r.index] = `127.0.0.1:${kids[i].port}`));
    const secret = Math.random().toString(36).slice(2);
    const results = roles.map((r, i) =>
      r.job === 'ps'
        ? undefined
        : new Promise<TaskResult[]>((resolve, reject) => {
            kids[i].child.removeAllListeners('exit');
            kids[i].child.once('exit', (code) => reject(new Error(`${r.job}:${r.index} exited (code ${code}) before reporting`)));
            kids[i].child.once('message', (m: { results: TaskResult[] }) => resolve(m.results));
          }),
    );
    roles.forEach((r, i) => kids[i].child.send({ spec, job: r.job, index: r.index, secret, tasks, chunkBytes } satisfies ChildSetup));
    return (await Promise.all(results.filter(Boolean))) as TaskResult[][];
  } finally {
    for (const k of kids) {
      k.child.removeAllListeners('exit');
      if (k.child.connected) k.child.disconnect();
    }
  }
}

function repsFor(floats: number): number {
  return floats <= 2_000_000 ? 10 : floats <= 8_000_000 ? 5 : floats <= 20_000_000 ? 3 : 2;
}

export async function benchAllreduce(o: AllreduceBenchOptions = {}): Promise<Row[]> {
  const sizes = o.sizes ?? [1_070_000, 1 << 20, 4 << 20, 16 << 20, 64 << 20];
  const workerCounts = o.workers ?? [2, 3, 4];
  const rows: Row[] = [];
  const procs = `child processes, ${floatKernelImplementation()} sums`;
  const chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const plainSizes = o.plainSizes ?? [4 << 20];

  for (const n of workerCounts) {
    const tcp = await rawTcp(o.tcpBytes ?? 1 << 30);
    rows.push({
      measure: 'raw loopback TCP, 1 stream',
      workers: '-',
      floats: '-',
      MB: ((o.tcpBytes ?? 1 << 30) / MB).toFixed(0),
      'median ms': '-',
      'algbw MB/s': '-',
      'busbw MB/s': Math.round(tcp),
      nodes: `2 processes, just before the ${n}-worker rows`,
    });
    const ringBytes = Math.min(o.tcpBytes ?? 1 << 30, 256 << 20);
    const cachedRing = await rawRing(n, ringBytes);
    rows.push({
      measure: `raw loopback TCP, ring of ${n} (all links at once), one cached chunk`,
      workers: '-',
      floats: '-',
      MB: (ringBytes / MB).toFixed(0),
      'median ms': '-',
      'algbw MB/s': '-',
      'busbw MB/s': Math.round(cachedRing),
      nodes: `${n} processes, each sending and receiving`,
    });
    // Per size: the all-reduce's own transfers over raw TCP (2(n-1)/n of the buffer each way per
    // member, from and into a buffer of its size), without framing or sums.
    const sameTransfers = new Map<number, number>();
    for (const floats of new Set([...sizes, ...plainSizes])) {
      const bytes = Math.round((2 * (n - 1) * floats * 4) / n);
      sameTransfers.set(floats, await rawRing(n, bytes, { footprint: floats * 4, chunk: chunkBytes }));
    }
    const tasks: Task[] = [
      ...sizes.map((floats) => ({ floats, buffer: 'reduce' as const })),
      ...plainSizes.map((floats) => ({ floats, buffer: 'plain' as const })),
    ].map(({ floats, buffer }) => ({ kind: 'allreduce', floats, buffer, reps: o.reps ?? repsFor(floats), warmup: 1 }));
    const results = await onCluster(n, 0, tasks, o.chunkBytes);
    tasks.forEach((task, i) => {
      if (task.kind !== 'allreduce') return;
      const { floats } = task;
      // The slowest worker's median: a collective is done when every worker has its result.
      const ms = Math.max(...results.map((r) => median(r[i].times!)));
      const alg = (floats * 4) / MB / (ms / 1000);
      const bus = (alg * 2 * (n - 1)) / n;
      // CPU time of the busiest worker per call: what the collective costs, whatever the machine's load.
      const cpu = Math.max(...results.map((r) => r[i].cpuMs ?? 0));
      rows.push({
        measure: task.buffer === 'plain' ? 'allReduce sum, plain Float32Array' : 'allReduce sum',
        workers: n,
        floats,
        MB: ((floats * 4) / MB).toFixed(1),
        'median ms': +ms.toFixed(1),
        'algbw MB/s': alg >= 10 ? Math.round(alg) : alg,
        'busbw MB/s': bus >= 10 ? Math.round(bus) : bus,
        'raw ring MB/s': Math.round(sameTransfers.get(floats)!),
        'busbw / raw ring': +(bus / sameTransfers.get(floats)!).toFixed(2),
        'busbw / cached ring': +(bus / cachedRing).toFixed(2),
        'busbw / raw TCP': +(bus / tcp).toFixed(2),
        'cpu ms/call': +cpu.toFixed(1),
        nodes: procs,
      });
    });
  }

  if (o.training ?? true) {
    const steps = o.trainSteps ?? 30;
    const train = (mode: 'local' | 'allreduce' | 'ps'): Task => ({ kind: 'train', mode, steps, warmup: 3, batch: 64 });
    const [ar] = await onCluster(2, 0, [
      train('local'),
      train('allreduce'),
      { kind: 'allreduce', floats: 101_770, reps: 20, warmup: 2, buffer: 'reduce' },
    ]);
    const [ps] = await onCluster(2, 1, [train('ps')]);
    const local = ar[0].msPerStep!;
    const note = `MLP 784-128-10, ${ar[0].params} params, batch 64/worker, Adam, ${ar[0].backend}`;
    rows.push({
      measure: 'training step, local only (both workers busy)',
      workers: 2,
      floats: ar[0].params!,
      MB: '-',
      'median ms': +local.toFixed(2),
      'algbw MB/s': '-',
      'busbw MB/s': '-',
      nodes: note,
    });
    rows.push({
      measure: 'training step, allreduce mode',
      workers: 2,
      floats: ar[1].params!,
      MB: '-',
      'median ms': +ar[1].msPerStep!.toFixed(2),
      'algbw MB/s': '-',
      'busbw MB/s': '-',
      nodes: `+${(ar[1].msPerStep! - local).toFixed(2)} ms/step over local`,
    });
    rows.push({
      measure: 'training step, ps mode (sync)',
      workers: '2 + 1 ps',
      floats: ps[0].params!,
      MB: '-',
      'median ms': +ps[0].msPerStep!.toFixed(2),
      'algbw MB/s': '-',
      'busbw MB/s': '-',
      nodes: `+${(ps[0].msPerStep! - local).toFixed(2)} ms/step over local`,
    });
    rows.push({
      measure: 'allReduce of that gradient alone',
      workers: 2,
      floats: 101_770,
      MB: '0.4',
      'median ms': +median(ar[2].times!).toFixed(2),
      'algbw MB/s': '-',
      'busbw MB/s': '-',
      nodes: procs,
    });
  }
  // One column order for every row (the table takes its columns in first-seen order).
  const columns = [
    ...['measure', 'workers', 'floats', 'MB', 'median ms', 'algbw MB/s', 'busbw MB/s', 'raw ring MB/s'],
    ...['busbw / raw ring', 'busbw / cached ring', 'busbw / raw TCP', 'cpu ms/call', 'nodes'],
  ];
  return rows.map((r) => Object.fromEntries(columns.map((c) => [c, r[c] ?? ''])));
}

if (require.main === module) {
  const mode = process.argv[2];
  if (mode === '--child') void childMain();
  else if (mode === '--sink') void sinkMain();
  else if (mode === '--ring') void ringMain();
  else {
    benchAllreduce().then(
      async (rows) => {
        const { markdownTable } = await import('./table');
        console.log(`allReduce on loopback, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load ${os.loadavg()[0].toFixed(1)}\n`);
        console.log(markdownTable(rows));
        process.exit(0);
      },
      (err: Error) => {
        console.error(err.stack ?? err.message);
        process.exit(1);
      },
    );
  }
}
