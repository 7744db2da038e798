/**
 * `tfos stack up --yarn` on loopback (no --hosts): a ResourceManager and one NodeManager on
 * 127.0.0.1, in a TFOS_HOME and on Spark ports of its own, so the shared stack is left alone. Its
 * HDFS and Livy are the shared stack's, given as a user's own (HADOOP_CONF_DIR, TFOS_LIVY_URL):
 * then only YARN and a Spark master with one worker start (4 JVMs), and YARN's client
 * configuration extends that HDFS's. The multi-host group covers YARN across hosts; this covers
 * the loopback placement, the one a user's laptop gets.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { runAllowingFailure } from '../../lib/platform/exec';
import { tfosPaths } from '../../lib/platform/paths';
import { freePort } from '../../lib/stack/ports';
import { stackDown, stackStatus, StackStatus, stackUp } from '../../lib/stack/stack';
import { linkedHome } from '../support/multihost';
import { requireStack } from '../support/stack';

const ROOT = path.resolve(__dirname, '../../..');
const ALLREDUCE = path.join(ROOT, 'test/fixtures/distributed/allreduce-module.js');

describe('Spark on YARN on loopback (tfos stack up --yarn, no --hosts)', function () {
  this.timeout(900_000);
  let env: NodeJS.ProcessEnv;
  let home: string;
  let status: StackStatus & { reused: boolean };

  before(async function () {
    this.timeout(600_000);
    const shared = requireStack();
    const sharedConf = (await stackStatus(tfosPaths()))?.hdfs.configDir;
    if (!sharedConf) throw new Error('the shared stack reports no HDFS client configuration (hdfs.configDir)');
    home = linkedHome();
    env = { ...process.env, TFOS_HOME: home, HADOOP_CONF_DIR: sharedConf, TFOS_LIVY_URL: shared.livy };
    const [sparkMaster, sparkMasterUi, sparkWorkerUiBase] = [await freePort(), await freePort(), await freePort()];
    status = await stackUp({
      yarn: true,
      workers: 1,
      workerCores: 1,
      ports: { sparkMaster, sparkMasterUi, sparkWorkerUiBase },
      env,
      log: (l) => process.stderr.write(`      [loopback yarn] ${l}\n`),
    });
  });

  after(async function () {
    this.timeout(300_000);
    if (!home) return;
    await stackDown({ env });
    // Nothing of this stack may be left: every process it started names its TFOS_HOME.
    const left = await runAllowingFailure('pgrep', ['-f', home], { timeoutMs: 10_000 });
    expect(left.stdout.trim(), `processes left by the loopback YARN stack in ${home}`).to.equal('');
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('status names the ResourceManager on 127.0.0.1 with its one NodeManager, and the shared HDFS', () => {
    expect(status.reused).to.equal(false);
    expect(status.yarn).to.deep.equal({ resourceManager: 'http://127.0.0.1:8088', nodeManagers: 1, healthy: true });
    expect(status.hosts).to.equal(undefined);
    expect(status.hdfs.defaultFS).to.equal(requireStack().defaultFS);
  });

  it('tfos run --via spark-submit --master yarn: 3 nodes with 1 ps in YARN containers on loopback', async () => {
    // The stack's HADOOP_CONF_DIR (found through TFOS_HOME) names the ResourceManager and the HDFS.
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        path.join(ROOT, 'bin/tfos.js'),
        ...['run', ALLREDUCE, '--via', 'spark-submit', '--master', 'yarn'],
        ...['--cluster-size', '3', '--num-ps', '1', '--reservation-timeout', '600'],
      ],
      { env: { ...env, HADOOP_CONF_DIR: '' }, timeout: 800_000, maxBuffer: 1 << 26 },
    ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`tfos run failed: ${err.message}\n${err.stderr ?? ''}`);
    });
    expect(stderr).to.match(/Spark application application_\d+_\d+ started on yarn/);
    const registered = [...stderr.matchAll(/registered as (\w+):\d+ \(executor (\S+), ([\d.]+):\d+/g)];
    expect(registered).to.have.length(3);
    for (const [, , executor, host] of registered) {
      expect(executor, 'executor id is the YARN container').to.match(/^container_/);
      expect(host).to.equal('127.0.0.1');
    }
    expect((stdout + stderr).match(/"psWeights":\[-0\.3\d*,-0\.6\d*,-0\.9\d*\]/g)).to.have.length(2);
  });
});
