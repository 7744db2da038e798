/**
 * Livy and spark-submit against the real stack (TFOS_TEST_LIVY, TFOS_TEST_SPARK_MASTER): a small
 * PySpark job as a Livy batch to `success`, a failing one to `dead` with its log, a pyspark
 * session statement (when the stack's Livy has Scala 2.12 REPL jars), and the same job through
 * spark-submit to the standalone master.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LivyBatchFailedError, LivyClient } from '../../lib/io/livy';
import { silentLogger } from '../../lib/stack/log';
import { tfosPaths } from '../../lib/stack/paths';
import { provisionSpark, sparkEnv } from '../../lib/stack/spark';

const livyUrl = process.env.TFOS_TEST_LIVY;
const master = process.env.TFOS_TEST_SPARK_MASTER;
const small = { driverMemory: '512m', executorMemory: '512m', executorCores: 1, numExecutors: 1 };

const GOOD_JOB = `
from pyspark import SparkContext
sc = SparkContext()
print("TFOS_RESULT sum of squares = %d" % sc.parallelize(range(100), 4).map(lambda x: x * x).sum())
sc.stop()
`;
const BAD_JOB = `
from pyspark import SparkContext
sc = SparkContext()
def boom(x):
    raise ValueError("tfos-marker: this job fails on purpose")
sc.parallelize(range(4), 2).map(boom).collect()
`;

describe('Livy (real server) and spark-submit', function () {
  let dir: string;
  let client: LivyClient;
  before(function () {
    if (!livyUrl) return this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-livy-'));
    fs.writeFileSync(path.join(dir, 'good.py'), GOOD_JOB);
    fs.writeFileSync(path.join(dir, 'bad.py'), BAD_JOB);
    client = new LivyClient({ url: livyUrl });
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('a PySpark batch reaches success and its log has the result', async () => {
    const batch = await client.runBatch({ file: path.join(dir, 'good.py'), name: 'tfos-test-good', ...small }, { timeoutMs: 300_000 });
    expect(batch.state).to.equal('success');
    const log = await client.batchLog(batch.id, 0, 1000);
    expect(log.log.join('\n')).to.contain('TFOS_RESULT sum of squares = 328350');
  });

  it('a failing batch reaches dead, and the error carries its log', async () => {
    const err = await client.runBatch({ file: path.join(dir, 'bad.py'), name: 'tfos-test-bad', ...small }, { timeoutMs: 300_000 }).catch((e: Error) => e);
    expect(err).to.be.instanceOf(LivyBatchFailedError);
    const e = err as LivyBatchFailedError;
    expect(e.state).to.equal('dead');
    expect(e.message).to.contain('tfos-marker: this job fails on purpose');
  });

  it('a pyspark session runs a statement', async function () {
    if (process.env.TFOS_TEST_LIVY_SESSIONS !== '1') return this.skip();
    const session = await client.createSession({ kind: 'pyspark', ...small });
    try {
      await client.waitForSessionIdle(session.id, { timeoutMs: 300_000 });
      expect((await client.runStatement(session.id, 'sc.parallelize(range(100)).sum()')).trim()).to.equal('4950');
    } finally {
      await client.closeSession(session.id);
    }
  });

  it('spark-submit runs the same job on the standalone master', async function () {
    if (!master) return this.skip();
    const spark = await provisionSpark(tfosPaths(), silentLogger);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        path.join(spark.sparkHome, 'bin', 'spark-submit'),
        ['--master', master, '--conf', 'spark.executor.memory=512m', '--conf', 'spark.executor.cores=1', path.join(dir, 'good.py')],
        { env: sparkEnv(spark), maxBuffer: 64 << 20, timeout: 300_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr.slice(-3000)}`)) : resolve(stdout + stderr)),
      ),
    );
    expect(out).to.contain('TFOS_RESULT sum of squares = 328350');
  });
});
