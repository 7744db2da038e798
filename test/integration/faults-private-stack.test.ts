/**
 * Faults that stop services end cleanly, on a stack of this suite's own (test/support/private-stack:
 * its own TFOS_HOME and ports, started once for these tests and removed after them), so that
 * stopping a DataNode, Livy or a Spark worker breaks nothing anyone else uses.
 *
 * Each test breaks one service under a running cluster and expects either a clear error — naming
 * the node, and the host or path at fault — within a stated bound, or, where the cluster can ride
 * the fault out (Livy restarted), a run that finishes. Then nothing of the cluster is left: no
 * trainer, no Spark process, no staging file. The bound of each is its `within` or the test's
 * timeout beyond the start-up; the observed time from fault to error is printed, never asserted.
 *
 * Order matters only for cost: the stack is shared, so a test that stops a service restarts it,
 * and the Spark worker — which the last test kills — is not restarted.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClusterFailedError, TFClusterHandle } from '../../lib/driver/cluster';
import { TFCluster, TFClusterRunOptions } from '../../lib/driver/tf-cluster';
import { Checkpoints } from '../../lib/io/checkpoints';
import { generatedCifarSet } from '../../lib/io/cifar10';
import { writeCifarDataset } from '../../lib/io/dataset';
import { resolveLocation } from '../../lib/io/dataset-fs';
import { WebHdfsClient } from '../../lib/io/webhdfs';
import { runAllowingFailure } from '../../lib/platform/exec';
import { groupMembers } from '../../lib/platform/process-group';
import { InputMode } from '../../lib/protocol/input-mode';
import { arrowPython } from '../support/cifar-fixture';
import { PrivateStack, startPrivateStack } from '../support/private-stack';
import { clusterProcesses, describeProcesses, waitFor } from '../support/processes';
import { within } from '../support/within';

const MODULES = path.resolve(__dirname, '../../../test/fixtures/modules');
const FAULT_TRAINER = path.join(MODULES, 'fault-trainer.js');
const SLOW_READER = path.join(MODULES, 'slow-reader.js');
const CHECKPOINT_WRITER = path.join(MODULES, 'checkpoint-writer.js');
/** Records of the generated CIFAR set: 24 small partitions, so a slow reader is mid-way for many seconds. */
const ROWS = 960;
const PARTITIONS = 24;

interface Started {
  handle: TFClusterHandle;
  logs: string[];
}

/**
 * Starts a cluster and resolves once `ready` lines (e.g. "STEPPING") came from `count` nodes.
 * The start-up waits are generous: on a 2-core machine shared with other jobs, executors of the
 * private stack have been seen to take over 4 minutes to register.
 */
async function startUntil(opts: TFClusterRunOptions, ready: string, count: number): Promise<Started> {
  const logs: string[] = [];
  let failed: Error | undefined;
  const handle = await TFCluster.run({
    reservationTimeout: 420,
    ...opts,
    onHandle: (h) => {
      h.on('log', (l: { label: string; line: string }) => logs.push(`${l.label}|${l.line}`));
      // Progress too, so a start that takes too long says how far it got.
      h.on('progress', (p: { message: string }) => logs.push(`progress|${p.message}`));
      h.on('failed', (e: Error) => (failed = e));
    },
  });
  await waitFor(() => Boolean(failed) || logs.filter((l) => l.includes(ready)).length >= count, {
    timeoutMs: 300_000,
    what: () => `fewer than ${count} node(s) printed ${ready}:\n${logs.slice(-20).join('\n')}`,
  }).catch(async (err: Error) => {
    await handle.shutdown({ timeout: 1 }).catch(() => undefined);
    throw err;
  });
  if (failed) throw new Error(`the cluster failed before its nodes printed ${ready}: ${failed.message}`);
  return { handle, logs };
}

/** The cluster's failure (it must fail), and seconds from `since`. */
async function failure(handle: TFClusterHandle, since: number, boundMs: number, what: string): Promise<{ err: Error; seconds: number }> {
  const err = await within(
    boundMs,
    what,
    handle.shutdown({ timeout: 600 }).then(
      () => new Error('the cluster finished instead of failing'),
      (e: Error) => e,
    ),
  );
  return { err, seconds: (Date.now() - since) / 1000 };
}

/** No trainer, spark-submit or launcher of the cluster left (waits for their exit, bounded). */
async function nothingLeft(handle: TFClusterHandle): Promise<void> {
  await waitFor(() => clusterProcesses(handle.clusterId).length === 0, {
    timeoutMs: 90_000,
    what: () => `cluster ${handle.clusterId} left processes:\n${describeProcesses(clusterProcesses(handle.clusterId))}`,
  });
}

function firstLine(err: Error): string {
  return err.message.split('\n')[0].slice(0, 240);
}

describe('faults that stop services end cleanly (a private stack)', function () {
  this.timeout(900_000);
  let stack: PrivateStack;
  let hdfs: WebHdfsClient;
  let train: string;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-faults-'));

  before(async function () {
    this.timeout(900_000);
    const python = arrowPython();
    if (!python) throw new Error("no Python with pyarrow (the Parquet writer): run 'node bin/tfos.js setup'");
    const started = Date.now();
    stack = await startPrivateStack((l) => process.stderr.write(`      [private stack] ${l}\n`));
    process.stderr.write(`      [private stack] up in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    hdfs = new WebHdfsClient({ url: stack.status.hdfs.webhdfs });
    // Arrow files for the trainers' own reads, Parquet beside them for Spark's.
    train = `${stack.status.hdfs.defaultFS}/faults/cifar/train`;
    await writeCifarDataset(
      generatedCifarSet(ROWS, { seed: 11, testRecords: 10 }),
      resolveLocation(`${stack.status.hdfs.defaultFS}/faults/cifar`, { webhdfs: stack.status.hdfs.webhdfs }),
      { partitions: PARTITIONS, batchRows: 20, parquet: { python } },
    );
  });

  after(async function () {
    this.timeout(300_000);
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!stack) return;
    const home = stack.home;
    await stack.down();
    // The stack's own processes are gone with it (their command lines name its TFOS_HOME).
    const procs = await runAllowingFailure('pgrep', ['-f', home], { timeoutMs: 10_000 });
    expect(procs.stdout.trim(), 'processes of the private stack left behind').to.equal('');
  });

  it('Livy stopped mid-run and restarted: the healthy cluster keeps training and finishes', async () => {
    const stopFile = path.join(tmp, 'stop-livy-run');
    const { handle, logs } = await startUntil(
      {
        module: FAULT_TRAINER,
        numExecutors: 2,
        args: { mode: 'allreduce', stopFile, reportEvery: 20 },
        via: { livy: { url: stack.status.livy.url } },
      },
      'STEPPING',
      2,
    );
    const stepsSeen = () => logs.filter((l) => / AT /.test(` ${l.split('|')[1]}`)).length;
    const since = Date.now();
    // Livy's JVM crashes: the spark-submit it started lives on. (A graceful stop of Livy kills
    // its batches itself — without recovery, which Livy offers on YARN only — see the next test.)
    await stack.stop('livy', 'kill-leader');
    const atStop = stepsSeen();
    await waitFor(() => stepsSeen() > atStop, { timeoutMs: 60_000, what: 'training went on while Livy was down' });
    await stack.restart('livy');
    const downSeconds = (Date.now() - since) / 1000;
    const atRestart = stepsSeen();
    await waitFor(() => stepsSeen() > atRestart, { timeoutMs: 60_000, what: 'training went on after Livy came back' });
    fs.writeFileSync(stopFile, '');
    const results = [...(await handle.shutdown({ timeout: 300 })).values()] as Array<{ node: string; steps: number }>;
    console.log(
      `      (Livy down ${downSeconds.toFixed(1)} s; the run finished ${((Date.now() - since) / 1000).toFixed(1)} s after the stop; steps ${results.map((r) => `${r.node}=${r.steps}`).join(', ')})`,
    );
    expect(results).to.have.length(2);
    for (const r of results) expect(r.steps).to.be.above(0);
    await nothingLeft(handle);
  });

  for (const mode of [InputMode.TENSORFLOW, InputMode.SPARK]) {
    it(`the DataNode stopped while InputMode.${mode.toUpperCase()} feeds: a clear error naming the DataNode and the file`, async () => {
      const dataNode = stack.service('hdfs-datanode');
      const [dnData, dnHttp] = dataNode.ports;
      const { handle } = await startUntil(
        {
          module: SLOW_READER,
          numExecutors: 2,
          inputMode: mode,
          data: train,
          // Spark reads a whole partition at once (mapInArrow's batches are larger than this set),
          // so under InputMode.SPARK the read that meets the stopped DataNode is the next epoch's.
          epochs: mode === InputMode.SPARK ? 3 : 1,
          args: { batch: 10, pauseMs: mode === InputMode.SPARK ? 300 : 500 },
          webhdfs: stack.status.hdfs.webhdfs,
          via: { local: {} },
        },
        'FEEDING',
        1,
      );
      const since = Date.now();
      await stack.stop('hdfs-datanode', 'term');
      try {
        const { err, seconds } = await failure(handle, since, 120_000, 'the cluster failing after the DataNode stopped');
        console.log(`      (DataNode stopped under ${mode} → "${firstLine(err)}" after ${seconds.toFixed(1)} s)`);
        expect(err).to.be.instanceOf(ClusterFailedError);
        expect(err.message).to.include('/faults/cifar/train/');
        if (mode === InputMode.TENSORFLOW) {
          // The trainer's own WebHDFS read: the node, the file and the DataNode's HTTP address.
          expect(err.message).to.match(/(chief|worker):0/);
          expect(err.message).to.include(`127.0.0.1:${dnHttp}`);
        } else {
          // Spark's read: the worker whose feeding task failed, the file and the DataNode's data address.
          expect(err.message).to.match(/the Spark task feeding worker \d \(127\.0\.0\.1:\d+\)/);
          expect(err.message).to.include(`127.0.0.1:${dnData}`);
        }
        await nothingLeft(handle);
      } finally {
        await stack.restart('hdfs-datanode');
      }
      // Reads only: nothing was added to the data's folder.
      expect((await hdfs.list('/faults/cifar/train')).filter((s) => s.pathSuffix.startsWith('.')).map((s) => s.pathSuffix)).to.deep.equal(
        [],
      );
    });
  }

  it('a checkpoint directory made unwritable (local disk): an error naming it, the previous checkpoint intact', async () => {
    const dir = path.join(tmp, 'ckpt-local');
    const goFile = path.join(tmp, 'go-local');
    const { handle } = await startUntil(
      { module: CHECKPOINT_WRITER, numExecutors: 1, args: { dir, goFile }, via: { local: {} } },
      'SAVED 1',
      1,
    );
    const undo = await makeUnwritable(dir);
    try {
      const since = Date.now();
      fs.writeFileSync(goFile, '');
      const { err, seconds } = await failure(handle, since, 60_000, 'the save into an unwritable directory failing');
      console.log(`      (local checkpoint dir unwritable → "${firstLine(err)}" after ${seconds.toFixed(1)} s)`);
      expect(err).to.be.instanceOf(ClusterFailedError);
      expect(err.message).to.include(`file://${dir}/ckpt-00000002`);
      expect(err.message).to.match(/chief:0/);
      await nothingLeft(handle);
    } finally {
      await undo();
    }
    await expectOnlyFirstCheckpoint(dir);
  });

  it('a checkpoint directory made unwritable (HDFS, its quota full): an error naming it, the previous checkpoint intact', async () => {
    const dirPath = '/faults/ckpt-hdfs';
    const dir = `${stack.status.hdfs.defaultFS}${dirPath}`;
    const goFile = path.join(tmp, 'go-hdfs');
    const { handle } = await startUntil(
      {
        module: CHECKPOINT_WRITER,
        numExecutors: 1,
        args: { dir, goFile },
        webhdfs: stack.status.hdfs.webhdfs,
        via: { local: {} },
      },
      'SAVED 1',
      1,
    );
    // No name more fits under the directory: a namespace quota of exactly what it holds.
    const summary = await hdfs.contentSummary(dirPath);
    await setQuota(dirPath, summary.directoryCount + summary.fileCount);
    try {
      const since = Date.now();
      fs.writeFileSync(goFile, '');
      const { err, seconds } = await failure(handle, since, 60_000, 'the save into a full directory failing');
      console.log(`      (HDFS checkpoint dir unwritable → "${firstLine(err)}" after ${seconds.toFixed(1)} s)`);
      expect(err).to.be.instanceOf(ClusterFailedError);
      expect(err.message).to.include(`${dir}/ckpt-00000002`);
      expect(err.message).to.match(/chief:0/);
      await nothingLeft(handle);
    } finally {
      await setQuota(dirPath, -1);
    }
    await expectOnlyFirstCheckpoint(dir, stack.status.hdfs.webhdfs);
  });

  it('a Spark worker killed mid-training fails the cluster naming the node it ran', async () => {
    const { handle } = await startUntil(
      {
        module: FAULT_TRAINER,
        numExecutors: 2,
        args: { mode: 'allreduce' },
        via: { sparkSubmit: { master: stack.status.spark.master } },
      },
      'STEPPING',
      2,
    );
    // The worker whose process tree holds a trainer of this cluster: kill it as a crashed host would.
    const workers = ['spark-worker-1', 'spark-worker-2'].map((name) => stack.service(name));
    const nodes = [...handle.nodes.values()];
    const hit = workers.map((w) => ({ w, node: nodes.find((n) => ancestors(n.pid).includes(w.pid)) })).find((x) => x.node);
    expect(hit, 'a trainer running under a standalone worker').to.not.equal(undefined);
    const name = `${hit!.node!.job}:${hit!.node!.taskIndex}`;
    const since = Date.now();
    await stack.stop(hit!.w.name, 'kill-group');
    const { err, seconds } = await failure(handle, since, 120_000, `the cluster failing after ${hit!.w.name} was killed`);
    console.log(`      (${hit!.w.name} SIGKILL → "${firstLine(err)}" after ${seconds.toFixed(1)} s)`);
    expect(err).to.be.instanceOf(ClusterFailedError);
    expect(err.message).to.include(name);
    await nothingLeft(handle);
    // The surviving worker runs no executor of the application any more.
    const other = workers.find((w) => w.name !== hit!.w.name)!;
    await waitFor(() => groupMembers(other.pid).length === 1, {
      timeoutMs: 90_000,
      what: () => `${other.name} still runs: ${describeProcesses(groupMembers(other.pid))}`,
    });
  });

  async function setQuota(p: string, count: number): Promise<void> {
    const res = await fetch(
      `${stack.status.hdfs.webhdfs}/webhdfs/v1${p}?op=SETQUOTA&namespacequota=${count}&storagespacequota=-1&user.name=${os.userInfo().username}`,
      { method: 'PUT' },
    );
    if (!res.ok) throw new Error(`SETQUOTA ${p} ${count}: HTTP ${res.status} ${await res.text()}`);
  }
});

/** A directory nobody can add to: immutable for root (which ignores modes), mode 0555 for anyone else. */
async function makeUnwritable(dir: string): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) {
    fs.chmodSync(dir, 0o555);
    return () => Promise.resolve(fs.chmodSync(dir, 0o755));
  }
  const res = await runAllowingFailure('chattr', ['+i', dir], { timeoutMs: 10_000 });
  if (res.code !== 0) throw new Error(`chattr +i ${dir} failed (${res.stderr.trim()}): cannot make a directory unwritable for root here`);
  return async () => {
    await runAllowingFailure('chattr', ['-i', dir], { timeoutMs: 10_000 });
  };
}

/** The checkpoint of step 1 still loads, and nothing else (no step 2, no staging leftover) is there. */
async function expectOnlyFirstCheckpoint(dir: string, webhdfs?: string): Promise<void> {
  const ckpts = new Checkpoints(dir, { webhdfs });
  const latest = await ckpts.latest<{ step: number }>();
  expect(latest?.step).to.equal(1);
  expect(Array.from(latest!.groups.model[0].values)).to.deep.equal([1, 1, 1, 1]);
  expect(await ckpts.fs.list(ckpts.dir)).to.deep.equal(['ckpt-00000001']);
}

/** pid, its parent, its parent's parent… up to init. */
function ancestors(pid: number): number[] {
  const out: number[] = [];
  for (let p = pid; p > 1;) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${p}/stat`, 'latin1');
    } catch {
      break;
    }
    p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    out.push(p);
  }
  return out;
}
