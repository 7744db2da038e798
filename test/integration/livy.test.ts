/**
 * Livy and spark-submit against a real Spark standalone cluster: a small PySpark job as a Livy
 * batch to `success` with its result in the log, a failing one to `dead` with its log in the
 * error, a pyspark interactive session running a statement, and the same job through
 * spark-submit to the standalone master.
 *
 * TFOS_TEST_LIVY / TFOS_TEST_SPARK_MASTER point the suite at a running Livy / master (and
 * TFOS_TEST_LIVY_SESSIONS=0 says that Livy has no sessions); whatever is not given is provisioned
 * and started here on free ports, and stopped afterwards.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SESSION_HEARTBEAT_SEC } from '../../lib/driver/routes/livy-route';
import { LivyBatchFailedError, LivyClient } from '../../lib/io/livy-client';
import { run } from '../../lib/platform/exec';
import { VERSIONS } from '../../lib/platform/versions';
import { livyService, provisionLivy } from '../../lib/stack/livy-server';
import { silentLogger } from '../../lib/platform/log';
import { tfosPaths } from '../../lib/platform/paths';
import { freePort } from '../../lib/stack/ports';
import { SparkInstall, sparkEnv } from '../../lib/platform/spark';
import { provisionSpark, sparkServices } from '../../lib/stack/spark';
import { RunningService, startService, stopService } from '../../lib/stack/supervisor';
import { closeTestSession, replClassDirs } from '../support/livy-session';
import { livySessionsOrWhyNot } from '../support/stack';
import { skipBecause } from '../support/skip';

/** Small footprint: one 512 MB executor with one core per application. */
const SMALL = { driverMemory: '512m', executorMemory: '512m', executorCores: 1, conf: { 'spark.cores.max': '1' } };

const GOOD_JOB = `
from pyspark import SparkContext
sc = SparkContext(appName="tfos-livy-test-good")
total = sc.parallelize(range(100), 2).map(lambda x: x * x).sum()
print("TFOS_RESULT sum of squares = %d" % total)
sc.stop()
`;
const MARKER = 'tfos-marker: this job fails on purpose';
const BAD_JOB = `
from pyspark import SparkContext
sc = SparkContext(appName="tfos-livy-test-bad")
def boom(x):
    raise ValueError("${MARKER}")
sc.parallelize(range(4), 2).map(boom).collect()
`;
const RESULT = 'TFOS_RESULT sum of squares = 328350';
/** Livy refuses a second batch or session of the same name: runs against a long-lived stack differ. */
const RUN = `${process.pid}-${Date.now().toString(36)}`;

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const note = (line: string) => process.stdout.write(`      ${line}\n`);

describe('Livy (real server) and spark-submit', function () {
  this.timeout(30 * 60_000);
  let spark: SparkInstall;
  let master: string;
  let livyUrl: string;
  /** Why this Livy runs no sessions (the 0.7.1 fallback), or undefined: it does. */
  let noSessions: string | undefined;
  let client: LivyClient;
  let jobsDir: string;
  let stackDir: string | undefined;
  const running: RunningService[] = [];

  before(async function () {
    spark = await provisionSpark(tfosPaths(), silentLogger);
    jobsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-livy-jobs-'));
    fs.writeFileSync(path.join(jobsDir, 'good.py'), GOOD_JOB);
    fs.writeFileSync(path.join(jobsDir, 'bad.py'), BAD_JOB);

    const givenMaster = process.env.TFOS_TEST_SPARK_MASTER?.trim();
    const givenLivy = process.env.TFOS_TEST_LIVY?.trim();
    // A given Livy is assumed to run sessions unless TFOS_TEST_LIVY_SESSIONS=0 says otherwise;
    // then that is acceptable only where no Livy 0.9.0 source release exists (else it throws).
    if (givenLivy && process.env.TFOS_TEST_LIVY_SESSIONS?.trim() === '0') {
      const s = livySessionsOrWhyNot({ livy: givenLivy, livySessions: false });
      noSessions = s.ok ? undefined : s.why;
    }
    if (givenMaster && givenLivy) {
      master = givenMaster;
      livyUrl = givenLivy;
    } else {
      stackDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-livy-stack-'));
      const logs = path.join(stackDir, 'logs');
      if (givenMaster) {
        master = givenMaster;
      } else {
        const sparkStack = sparkServices(spark, {
          stackDir,
          masterPort: await freePort(),
          masterUiPort: await freePort(),
          workers: 1,
          workerCores: 2,
          workerMemory: '1g',
          workerUiPortBase: await freePort(),
        });
        for (const spec of sparkStack.services) running.push(await startService(spec, logs));
        master = sparkStack.masterUrl;
      }
      if (givenLivy) {
        livyUrl = givenLivy;
      } else {
        let t = Date.now();
        const livy = await provisionLivy(tfosPaths(), silentLogger);
        note(`Livy provisioning: ${seconds(t)}`);
        if (!livy.replJarsDir)
          noSessions = `the Livy provisioned here is the ${VERSIONS.livy.central} fallback (no Livy ${VERSIONS.livy.source} source release on this machine), which runs no sessions`;
        const stack = livyService(livy, { stackDir, port: await freePort(), sparkMaster: master, spark });
        t = Date.now();
        running.push(await startService(stack.service, logs));
        note(`Livy start to healthy: ${seconds(t)}`);
        livyUrl = stack.url;
      }
    }
    client = new LivyClient({ url: livyUrl });
  });

  after(async function () {
    for (const svc of running.reverse()) await stopService(svc);
    for (const dir of [jobsDir, stackDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const job = (name: string) => `file://${path.join(jobsDir, name)}`;

  it('a PySpark batch reaches success and its log has the result', async () => {
    const t = Date.now();
    const batch = await client.runBatch(
      { file: job('good.py'), name: `tfos-test-good-${RUN}`, ...SMALL },
      { timeoutMs: 600_000, maxPollMs: 2000 },
    );
    note(`batch to success: ${seconds(t)}`);
    expect(batch.state).to.equal('success');
    const log = await client.batchLog(batch.id, 0, 10_000);
    expect(log.log.join('\n')).to.contain(RESULT);
  });

  it('a failing batch reaches dead, and the error carries its log', async () => {
    const t = Date.now();
    const err = await client
      .runBatch({ file: job('bad.py'), name: `tfos-test-bad-${RUN}`, ...SMALL }, { timeoutMs: 600_000, maxPollMs: 2000 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    note(`failing batch to dead: ${seconds(t)}`);
    expect(err).to.be.instanceOf(LivyBatchFailedError);
    const e = err as LivyBatchFailedError;
    expect(e.state).to.equal('dead');
    expect(e.log.join('\n')).to.contain(MARKER);
    expect(e.message).to.contain(MARKER);
  });

  it('a pyspark session runs a statement and closes, leaving no REPL class directory', async function () {
    if (noSessions) skipBecause(this, noSessions);
    const dirsBefore = replClassDirs();
    let t = Date.now();
    // A heartbeat: if this process dies mid-test, Livy deletes the session within minutes.
    const session = await client.createSession({
      kind: 'pyspark',
      name: `tfos-test-session-${RUN}`,
      heartbeatTimeoutInSecond: SESSION_HEARTBEAT_SEC,
      ...SMALL,
    });
    try {
      await client.waitForSessionIdle(session.id, { timeoutMs: 600_000, maxPollMs: 2000 });
      note(`session to idle: ${seconds(t)}`);
      t = Date.now();
      const out = await client.runStatement(session.id, 'sc.parallelize(range(100)).sum()', { timeoutMs: 300_000 });
      note(`statement: ${seconds(t)}`);
      expect(out.trim()).to.equal('4950');
    } finally {
      t = Date.now();
      await closeTestSession(client, session.id);
    }
    // Closed sessions leave the list (Livy answers 404 for them).
    const gone = await client.getSession(session.id).then(
      () => false,
      () => true,
    );
    note(`session close: ${seconds(t)}`);
    expect(gone).to.equal(true);
    expect(
      replClassDirs().filter((d) => !dirsBefore.includes(d)),
      'REPL class directories left behind',
    ).to.deep.equal([]);
  });

  it('spark-submit runs the same job on the standalone master', async () => {
    const t = Date.now();
    const res = await run(
      path.join(spark.sparkHome, 'bin', 'spark-submit'),
      [
        '--master',
        master,
        '--driver-memory',
        '512m',
        '--conf',
        'spark.executor.memory=512m',
        '--conf',
        'spark.executor.cores=1',
        '--conf',
        'spark.cores.max=1',
        path.join(jobsDir, 'good.py'),
      ],
      { env: sparkEnv(spark), timeoutMs: 600_000 },
    );
    note(`spark-submit: ${seconds(t)}`);
    expect(res.stdout + res.stderr).to.contain(RESULT);
  });
});
