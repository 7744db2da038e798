/**
 * TFCluster.run through each route against real Spark: the embedded local Spark, spark-submit to
 * the stack's standalone master (2 workers), and Livy (batch and session). The standalone and Livy
 * suites need the stack that `npm test` starts (TFOS_TEST_SPARK_MASTER / TFOS_TEST_LIVY).
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import { ClusterFailedError, TFClusterHandle } from '../../lib/driver/cluster';
import { RouteOption, TFCluster } from '../../lib/driver/tf-cluster';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/modules');
const reportContext = path.join(FIXTURES, 'report-context.js');
const throws = path.join(FIXTURES, 'throws.js');

/** pids of trainer processes still alive (any cluster). */
function trainerPids(): number[] {
  try {
    const out = execFileSync('pgrep', ['-f', 'dist/lib/node/trainer-main.js']).toString();
    return out.split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function noTrainersLeft(): Promise<void> {
  // Trainers exit within a few seconds of their cluster ending.
  const deadline = Date.now() + 15_000;
  while (trainerPids().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  expect(trainerPids(), 'trainer processes left behind').to.deep.equal([]);
}

interface NodeReport {
  jobName: string;
  taskIndex: number;
  clusterSpec: { ps: string[]; worker: string[]; chief?: string[] };
  numWorkers: number;
  workerNum: number;
  executorId: string;
  target: string;
  absolute: string;
  args: unknown;
}

function launcherPids(): number[] {
  try {
    return execFileSync('pgrep', ['-f', 'spark-jobs/tfos_launcher.py']).toString().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  return cond();
}

function routeSuite(
  name: string,
  via: () => RouteOption | undefined,
  opts: { tooFew?: () => RouteOption; defaultFS?: string; killDriver?: boolean } = {},
) {
  describe(`TFCluster.run via ${name}`, function () {
    before(function () {
      if (!via()) this.skip();
    });
    afterEach(noTrainersLeft);

    it('runs 3 nodes with 1 ps: roles, cluster spec and ctx are right, results come back', async () => {
      const started = Date.now();
      const logs: string[] = [];
      const handle: TFClusterHandle = await TFCluster.run({
        module: reportContext,
        numExecutors: 3,
        numPs: 1,
        args: { lr: 0.1, tags: ['x'] },
        via: via(),
        defaultFS: opts.defaultFS,
        reservationTimeout: 180,
        onHandle: (h) => h.on('log', (l) => logs.push(`${l.label}|${l.line}`)),
      });
      const reservedMs = Date.now() - started;
      const results = (await handle.shutdown({ timeout: 120 })) as Map<number, NodeReport>;
      expect(handle.state).to.equal('finished');
      const byRole = new Map([...results.values()].map((r) => [`${r.jobName}:${r.taskIndex}`, r]));
      expect([...byRole.keys()].sort()).to.deep.equal(['chief:0', 'ps:0', 'worker:0']);
      const spec = byRole.get('ps:0')!.clusterSpec;
      expect(spec.ps).to.have.length(1);
      expect(spec.chief).to.have.length(1);
      expect(spec.worker).to.have.length(1);
      for (const r of results.values()) {
        expect(r.clusterSpec).to.deep.equal(spec);
        expect(r.args).to.deep.equal({ lr: 0.1, tags: ['x'] });
        expect(r.numWorkers).to.equal(2);
        expect(r.target).to.equal(r.jobName === 'ps' ? spec.ps[0] : r.jobName === 'chief' ? spec.chief![0] : spec.worker[0]);
      }
      expect(byRole.get('chief:0')!.workerNum).to.equal(0);
      expect(byRole.get('worker:0')!.workerNum).to.equal(1);
      expect(byRole.get('ps:0')!.workerNum).to.equal(-1);
      if (opts.defaultFS) expect(byRole.get('worker:0')!.absolute).to.match(new RegExp(`^${opts.defaultFS}/user/[^/]+/data/x$`));
      // Trainer output reaches the driver, labelled by role.
      expect(logs).to.include('worker:0|hello from worker:0 args={"lr":0.1,"tags":["x"]}');
      console.log(`      (${name}: run → all registered in ${(reservedMs / 1000).toFixed(1)} s)`);
    });

    it('a throwing node fails the whole cluster with its message, in bounded time', async () => {
      const handle = await TFCluster.run({ module: throws, numExecutors: 3, numPs: 1, via: via(), reservationTimeout: 180 });
      const failedAt = Date.now();
      const err = await handle.shutdown({ timeout: 120 }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).to.be.instanceOf(ClusterFailedError);
      expect(err!.message).to.contain('boom-from-the-chief: bad learning rate');
      expect(err!.message).to.contain('chief:0');
      expect(Date.now() - failedAt).to.be.below(60_000);
      // Idempotent: a second shutdown gives the same outcome, no new work.
      const again = await handle.shutdown().catch((e: Error) => e);
      expect(again).to.equal(err);
    });

    if (opts.killDriver) {
      it('killing the driver process (SIGKILL) ends every trainer and the Spark application', async () => {
        const driver = spawn(process.execPath, [path.join(FIXTURES, '../driver-then-wait.js'), path.join(FIXTURES, 'sleeps.js'), JSON.stringify(via())], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        driver.stdout!.on('data', (c) => (out += c));
        driver.stderr!.on('data', (c) => (out += c));
        expect(await waitUntil(() => out.includes('READY'), 180_000), `driver never got ready:\n${out}`).to.equal(true);
        expect(trainerPids()).to.have.length(2);
        driver.kill('SIGKILL');
        // Trainers notice the dropped WebSocket at once; the launcher after its driver-lost timeout.
        expect(await waitUntil(() => trainerPids().length === 0, 15_000), 'trainers outlived the driver').to.equal(true);
        expect(await waitUntil(() => launcherPids().length === 0, 60_000), 'the launcher outlived the driver').to.equal(true);
      });
    }

    if (opts.tooFew) {
      it('asking for more nodes than Spark can run at once fails the reservation, naming the counts', async () => {
        const started = Date.now();
        const err = await TFCluster.run({ module: reportContext, numExecutors: 5, via: opts.tooFew!(), reservationTimeout: 25 }).then(
          () => undefined,
          (e: Error) => e,
        );
        expect(err, 'run() should have rejected').to.be.instanceOf(Error);
        expect(err!.message).to.match(/needs 5 task slots.*only \d/);
        expect(Date.now() - started).to.be.below(90_000);
      });
    }
  });
}

routeSuite('the embedded local Spark', () => ({ local: {} }), { tooFew: () => ({ local: { cores: 2 } }), killDriver: true });

const master = process.env.TFOS_TEST_SPARK_MASTER;
routeSuite(
  'spark-submit to the standalone master',
  () => (master ? { sparkSubmit: { master, conf: { 'spark.executor.memory': '512m' } } } : undefined),
  {
    tooFew: () => ({ sparkSubmit: { master: master!, conf: { 'spark.executor.memory': '512m', 'spark.cores.max': '2' } } }),
    defaultFS: process.env.TFOS_TEST_DEFAULT_FS,
    killDriver: true,
  },
);

const livy = process.env.TFOS_TEST_LIVY;
routeSuite('a Livy batch', () => (livy ? { livy: { url: livy, executorMemory: '512m', driverMemory: '512m' } } : undefined), { killDriver: true });
// Sessions need Livy REPL jars for Scala 2.12, which Maven Central lacks (see docs/livy.md).
const sessions = livy && process.env.TFOS_TEST_LIVY_SESSIONS === '1';
routeSuite('a Livy interactive session', () => (sessions ? { livy: { url: livy!, mode: 'session', executorMemory: '512m', driverMemory: '512m' } } : undefined));

describe('TFCluster.run input checks', () => {
  it('names a missing module', async () => {
    const err = await TFCluster.run({ module: '/nope/missing.js', numExecutors: 2 }).catch((e: Error) => e);
    expect((err as Error).message).to.contain('/nope/missing.js');
  });
  it('refuses a cluster with no worker left', async () => {
    const err = await TFCluster.run({ module: reportContext, numExecutors: 2, numPs: 2 }).catch((e: Error) => e);
    expect((err as Error).message).to.match(/numExecutors=2 leaves no worker after 2 ps/);
  });
  it('names a function the module does not export', async () => {
    const handle = await TFCluster.run({ module: reportContext, fn: 'nosuch', numExecutors: 1 });
    const err = await handle.shutdown({ timeout: 60 }).catch((e: Error) => e);
    expect((err as Error).message).to.contain("has no function 'nosuch'");
    await noTrainersLeft();
  });
});
