/**
 * TFCluster.run through each route against real Spark: the embedded local Spark, spark-submit to
 * the stack's standalone master (2 workers), and Livy (batch and session). The standalone and Livy
 * suites need the stack that `npm test` starts (TFOS_TEST_SPARK_MASTER / TFOS_TEST_LIVY).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { ClusterFailedError, ProgressEvent, TFClusterHandle } from '../../lib/driver/cluster';
import { STARTUP_PHASES } from '../../lib/driver/phases';
import { RouteOption, TFCluster, TFClusterRunOptions } from '../../lib/driver/tf-cluster';
import { clusterProcesses, clusterTrainers, describeProcesses, waitFor } from '../support/processes';
import { replClassDirs } from '../support/livy-session';
import { livySessionsOrWhyNot, requireStack } from '../support/stack';
import { skipBecause } from '../support/skip';
import { within } from '../support/within';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/modules');
const reportContext = path.join(FIXTURES, 'report-context.js');
const throws = path.join(FIXTURES, 'throws.js');

/** Ids of the clusters a test started, so afterEach checks exactly their processes. */
const started: string[] = [];
function run(opts: TFClusterRunOptions): Promise<TFClusterHandle> {
  return TFCluster.run({
    ...opts,
    onHandle: (h) => {
      started.push(h.clusterId);
      opts.onHandle?.(h);
    },
  });
}

/** Every process of the clusters this test started has exited (trainers within seconds of the end). */
async function noProcessesLeft(): Promise<void> {
  const ids = started.splice(0);
  const left = () => ids.flatMap(clusterProcesses);
  await waitFor(() => left().length === 0, {
    timeoutMs: 30_000,
    what: () => `processes of cluster(s) ${ids.join(', ')} left behind:\n${describeProcesses(left())}`,
  });
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

/**
 * `via` is called in before(): for a route on the stack it throws when the stack is missing or
 * unhealthy (fail closed); `unavailable` returns why a route cannot exist on this machine at all.
 */
function routeSuite(
  name: string,
  via: () => RouteOption,
  opts: {
    tooFew?: () => RouteOption;
    defaultFS?: () => string;
    killDriver?: boolean;
    unavailable?: () => string | undefined;
    /** The route's Spark driver runs here: it leaves none of its Scala REPL's class directories behind. */
    noReplDirsLeft?: boolean;
  } = {},
) {
  describe(`TFCluster.run via ${name}`, function () {
    this.timeout(300_000);
    before(function () {
      const why = opts.unavailable?.();
      if (why) skipBecause(this, why);
      via();
    });
    afterEach(noProcessesLeft);
    if (opts.noReplDirsLeft) {
      let before: string[] = [];
      beforeEach(() => (before = replClassDirs()));
      afterEach(() =>
        expect(
          replClassDirs().filter((d) => !before.includes(d)),
          'REPL class directories left behind',
        ).to.deep.equal([]),
      );
    }

    it('runs 3 nodes with 1 ps: roles, cluster spec and ctx are right, results come back (the ps after 5 s of closing work)', async () => {
      const logs: string[] = [];
      const progress: string[] = [];
      const handle: TFClusterHandle = await run({
        module: reportContext,
        numExecutors: 3,
        numPs: 1,
        // The ps takes 5 s after shutdown to return: longer than a failed cluster's 3 s, within the grace.
        args: { lr: 0.1, tags: ['x'], psClosingMs: 5000 },
        via: via(),
        defaultFS: opts.defaultFS?.(),
        reservationTimeout: 180,
        onHandle: (h) => {
          h.on('log', (l) => logs.push(`${l.label}|${l.line}`));
          h.on('progress', (p: ProgressEvent) => progress.push(p.message));
        },
      });
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
        expect(r.args).to.deep.equal({ lr: 0.1, tags: ['x'], psClosingMs: 5000 });
        expect(r.numWorkers).to.equal(2);
        expect(r.target).to.equal(r.jobName === 'ps' ? spec.ps[0] : r.jobName === 'chief' ? spec.chief![0] : spec.worker[0]);
      }
      expect(byRole.get('chief:0')!.workerNum).to.equal(0);
      expect(byRole.get('worker:0')!.workerNum).to.equal(1);
      expect(byRole.get('ps:0')!.workerNum).to.equal(-1);
      if (opts.defaultFS) expect(byRole.get('worker:0')!.absolute).to.match(new RegExp(`^${opts.defaultFS()}/user/[^/]+/data/x$`));
      // Trainer output reaches the driver, labelled by role.
      expect(logs).to.include('worker:0|hello from worker:0 args={"lr":0.1,"tags":["x"],"psClosingMs":5000}');
      // Start-up is reported phase by phase, every phase and in order (no timings asserted), for each node too.
      const startup = handle.phases.startup();
      expect(startup.map((p) => p.phase)).to.deep.equal([...STARTUP_PHASES]);
      expect(startup.map((p) => p.seconds)).to.deep.equal(startup.map((p) => p.seconds).sort((a, b) => a - b));
      for (const node of [0, 1, 2]) {
        const mine = handle.phases.events.filter((e) => e.nodeIndex === node).map((e) => e.phase);
        expect(mine).to.deep.equal(['python-worker', 'task-started', 'trainer-started', 'trainer-loaded', 'registered']);
      }
      expect(progress.find((m) => m.startsWith('all 3 nodes registered in'))).to.match(
        /\(submitted [\d.]+ s · launcher .* · registered [\d.]+ s/,
      );
    });

    it('a throwing node fails the whole cluster with its message, in bounded time', async () => {
      const handle = await run({ module: throws, numExecutors: 3, numPs: 1, via: via(), reservationTimeout: 180 });
      // The other nodes sleep for 10 minutes: only the failure path can end this within a minute.
      const err = await within(
        60_000,
        "the chief's error ending the cluster",
        handle.shutdown({ timeout: 120 }).then(
          () => undefined,
          (e: Error) => e,
        ),
      );
      expect(err).to.be.instanceOf(ClusterFailedError);
      expect(err!.message).to.contain('boom-from-the-chief: bad learning rate');
      expect(err!.message).to.contain('chief:0');
      // Idempotent: a second shutdown gives the same outcome, no new work.
      const again = await handle.shutdown().catch((e: Error) => e);
      expect(again).to.equal(err);
    });

    if (opts.killDriver) {
      it('killing the driver process (SIGKILL) ends every trainer and the Spark application', async () => {
        const driver = spawn(
          process.execPath,
          [path.join(FIXTURES, '../driver-then-wait.js'), path.join(FIXTURES, 'sleeps.js'), JSON.stringify(via())],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let out = '';
        driver.stderr!.on('data', (c) => (out += c));
        // The driver prints "READY <cluster id>" once both nodes have registered.
        const clusterId = await within(
          180_000,
          'the driver reporting its cluster reserved',
          new Promise<string>((resolve, reject) => {
            driver.stdout!.on('data', (c) => {
              out += c;
              const m = /READY ([0-9a-f]+)/.exec(out);
              if (m) resolve(m[1]);
            });
            driver.once('exit', (code) => reject(new Error(`the driver exited (${code}) before its cluster was reserved:\n${out}`)));
          }),
        ).catch((err: Error) => {
          driver.kill('SIGKILL');
          throw err;
        });
        started.push(clusterId);
        expect(clusterTrainers(clusterId)).to.have.length(2);
        driver.kill('SIGKILL');
        // Trainers notice the dropped WebSocket at once; the launcher after its driver-lost timeout.
        await waitFor(() => clusterTrainers(clusterId).length === 0, { timeoutMs: 15_000, what: 'trainers outlived the driver' });
        await waitFor(() => clusterProcesses(clusterId).length === 0, {
          timeoutMs: 60_000,
          what: 'the Spark application outlived the driver',
        });
      });
    }

    if (opts.tooFew) {
      it('asking for more nodes than Spark can run at once fails the reservation, naming the counts', async () => {
        // reservationTimeout 25 s: the error must come from the reservation, well before the test's timeout.
        const err = await within(
          90_000,
          'the reservation failing',
          run({ module: reportContext, numExecutors: 5, via: opts.tooFew!(), reservationTimeout: 25 }).then(
            () => undefined,
            (e: Error) => e,
          ),
        );
        expect(err, 'run() should have rejected').to.be.instanceOf(Error);
        expect(err!.message).to.match(/needs 5 task slots.*only \d/);
      });
    }
  });
}

routeSuite('the embedded local Spark', () => ({ local: {} }), { tooFew: () => ({ local: { cores: 2 } }), killDriver: true });

const SMALL = { 'spark.executor.memory': '512m' };
routeSuite('spark-submit to the standalone master', () => ({ sparkSubmit: { master: requireStack().sparkMaster, conf: SMALL } }), {
  tooFew: () => ({ sparkSubmit: { master: requireStack().sparkMaster, conf: { ...SMALL, 'spark.cores.max': '2' } } }),
  defaultFS: () => requireStack().defaultFS,
  killDriver: true,
});

routeSuite('a Livy batch', () => ({ livy: { url: requireStack().livy, executorMemory: '512m', driverMemory: '512m' } }), {
  killDriver: true,
});
// Sessions need Livy 0.9.0's REPL jars for Scala 2.12 (built from the source release, see docs/livy.md).
routeSuite(
  'a Livy interactive session',
  () => ({ livy: { url: requireStack().livy, mode: 'session', executorMemory: '512m', driverMemory: '512m' } }),
  {
    unavailable: () => {
      const s = livySessionsOrWhyNot(requireStack());
      return s.ok ? undefined : s.why;
    },
    noReplDirsLeft: true,
  },
);

describe('TFCluster.run input checks', function () {
  this.timeout(120_000);
  afterEach(noProcessesLeft);

  it('names a missing module', async () => {
    const err = await run({ module: '/nope/missing.js', numExecutors: 2 }).catch((e: Error) => e);
    expect((err as Error).message).to.contain('/nope/missing.js');
  });
  it('refuses a cluster with no worker left', async () => {
    const err = await run({ module: reportContext, numExecutors: 2, numPs: 2 }).catch((e: Error) => e);
    expect((err as Error).message).to.match(/numExecutors=2 leaves no worker after 2 ps/);
  });
  it('names a function the module does not export', async () => {
    const handle = await run({ module: reportContext, fn: 'nosuch', numExecutors: 1 });
    const err = await handle.shutdown({ timeout: 60 }).catch((e: Error) => e);
    expect((err as Error).message).to.contain("has no function 'nosuch'");
  });
});
