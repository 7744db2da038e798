/** `tfos submit-command`: the spark-submit line for a run, one line, shell-quoted. */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { shellQuote, submitLine } from '../../lib/cli/submit-command';
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
});
