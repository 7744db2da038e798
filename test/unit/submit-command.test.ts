/** `tfos submit-command`: the spark-submit line for a run, one line, shell-quoted. */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { formatSubmitLine, PYTHON_RUNNER, shellQuote, submitLine } from '../../lib/cli/submit-command';
import { LAUNCHER_PATH } from '../../lib/driver/routes/spark-submit';
import { rejection } from '../support/rejection';
import { skipBecause } from '../support/skip';

const modulePath = path.resolve(__dirname, '../../../test/fixtures/modules/report-context.js');
const noStack = { ...process.env, SPARK_MASTER: '', HADOOP_CONF_DIR: '' };

describe('tfos submit-command', () => {
  it('shell quoting survives bash word splitting', () => {
    const words = ['plain', 'two words', "it's", '$HOME', 'a"b', '*', ''];
    const echoed = execFileSync('bash', ['-c', `printf '%s\\n' ${words.map(shellQuote).join(' ')}`]).toString();
    expect(echoed.split('\n').slice(0, -1)).to.deep.equal(words);
  });

  it('puts the launcher and the module where spark-submit expects its application, and passes tfos run options after it', async function () {
    let line;
    try {
      line = await submitLine(
        [
          modulePath,
          '--master',
          'spark://10.0.0.1:7077',
          '--conf',
          'spark.executor.memory=1g',
          '--cluster-size',
          '3',
          '--num-ps',
          '1',
          '--input-mode',
          'spark',
          '--data',
          'hdfs:///d/train',
          '--epochs',
          '2',
          '--',
          'x',
          'y z',
        ],
        noStack,
      );
    } catch (err) {
      if (/tfos setup/.test((err as Error).message))
        return skipBecause(this, 'Spark is not provisioned on this machine (tfos setup has not run)');
      throw err;
    }
    const argv = line.argv;
    expect(argv[0]).to.match(/bin\/spark-submit$/);
    expect(argv.slice(1, 3)).to.deep.equal(['--master', 'spark://10.0.0.1:7077']);
    expect(argv).to.include('spark.executor.memory=1g');
    const at = argv.indexOf(LAUNCHER_PATH);
    expect(argv.slice(at + 1)).to.deep.equal([
      modulePath,
      '--cluster-size',
      '3',
      '--num-ps',
      '1',
      '--input-mode',
      'spark',
      '--data',
      'hdfs:///d/train',
      '--epochs',
      '2',
      '--',
      'x',
      'y z',
    ]);
    expect(line.env).to.not.have.property('SPARK_LOCAL_IP'); // not a loopback master
    expect(line.env.JAVA_HOME).to.be.a('string');
  });

  it('refuses what tfos run refuses, and the Livy route', async () => {
    expect((await rejection(submitLine([modulePath, '--epochs', '2'], noStack))).message).to.contain('--epochs needs --data');
    expect((await rejection(submitLine([modulePath, '--via', 'livy', '--livy', 'http://127.0.0.1:1'], noStack))).message).to.contain(
      '--via livy submits through Livy',
    );
  });

  describe('--deploy-mode cluster', () => {
    async function clusterLine(this: Mocha.Context, master: string, extra: string[] = []) {
      try {
        return await submitLine([modulePath, '--deploy-mode', 'cluster', '--master', master, ...extra, '--', 'a b'], noStack);
      } catch (err) {
        if (/tfos setup/.test((err as Error).message)) return this.skip();
        throw err;
      }
    }

    it("on a standalone master: Spark's PythonRunner runs the launcher from a Spark jar, and the line exits with the driver's final state", async function () {
      const line = await clusterLine.call(this, 'spark://10.0.0.1:7077', ['--conf', 'spark.driver.extraJavaOptions=-Dmine=1']);
      const argv = line.argv;
      expect(argv.slice(1, 5)).to.deep.equal(['--master', 'spark://10.0.0.1:7077', '--deploy-mode', 'cluster']);
      expect(argv).to.include('spark.standalone.submit.waitAppCompletion=true');
      // The driver's JVM gets Java 17's module flags, and the user's own options after them (one property).
      const javaOpts = argv.filter((a) => a.startsWith('spark.driver.extraJavaOptions='));
      expect(javaOpts).to.have.length(1);
      expect(javaOpts[0]).to.match(/--add-opens=java\.base\/sun\.nio\.ch=ALL-UNNAMED.* -Dmine=1$/);
      const at = argv.indexOf('--class');
      expect(argv[at + 1]).to.equal(PYTHON_RUNNER);
      expect(argv[at + 2]).to.match(/\/jars\/spark-tags_[\d.]+-[\w.]+\.jar$/);
      expect(argv.slice(at + 3)).to.deep.equal([LAUNCHER_PATH, '', modulePath, '--', 'a b']);
      expect(line.statusFilter).to.be.a('string');
      expect(formatSubmitLine(line)).to.match(/ '' \S+report-context\.js -- 'a b' 2>&1 \| awk /);
    });

    it("the status filter passes spark-submit's log through and exits 0 only when the driver FINISHED", async function () {
      const line = await clusterLine.call(this, 'spark://10.0.0.1:7077');
      const through = (log: string) => {
        try {
          return { code: 0, out: execFileSync('bash', ['-c', `printf '%s\\n' ${shellQuote(log)} ${line.statusFilter}`]).toString() };
        } catch (err) {
          return { code: (err as { status: number }).status, out: String((err as { stdout: Buffer }).stdout) };
        }
      };
      const done = 'INFO ClientEndpoint: State of driver driver-1-0001 is FINISHED, exiting spark-submit JVM.';
      expect(through(done)).to.deep.equal({ code: 0, out: `${done}\n` });
      expect(through(done.replace('FINISHED', 'FAILED')).code).to.equal(1);
      expect(through('Exception in thread "main" java.io.IOException: Failed to connect to master').code).to.equal(1);
    });

    it('elsewhere the launcher is the application itself (YARN runs Python drivers in cluster mode), and local masters are refused', async function () {
      const line = await clusterLine.call(this, 'yarn');
      expect(line.argv).to.not.include('--class');
      expect(line.argv.slice(line.argv.indexOf(LAUNCHER_PATH))).to.deep.equal([LAUNCHER_PATH, modulePath, '--', 'a b']);
      expect(line.statusFilter).to.equal(undefined);
      expect((await rejection(submitLine([modulePath, '--deploy-mode', 'cluster', '--master', 'local[3]'], noStack))).message).to.contain(
        'needs a cluster to host the driver',
      );
      expect((await rejection(submitLine([modulePath, '--deploy-mode', 'both'], noStack))).message).to.contain(
        "--deploy-mode must be client or cluster, got 'both'",
      );
    });
  });
});
