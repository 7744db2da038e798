/**
 * Spark on YARN, on the multi-host stack started with --yarn: Hadoop's own ResourceManager on host
 * a and a NodeManager on each worker host; executors run in YARN containers. (The Livy tests of
 * multihost.test.ts go through YARN too: the stack's Livy submits there.)
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { packProject } from '../../lib/driver/pack';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { WebHdfsClient } from '../../lib/io/webhdfs';
import { InputMode } from '../../lib/protocol/input-mode';
import { CIFAR_RECORDS, cifarOnStack, MultiHostStack, multiHostStack } from '../support/multihost';
import { makeProject } from '../support/pack-project';
import { skipBecause } from '../support/skip';

const ROOT = path.resolve(__dirname, '../../..');
const ALLREDUCE = path.join(ROOT, 'test/fixtures/distributed/allreduce-module.js');
const CIFAR_COUNT = path.join(ROOT, 'test/fixtures/multihost/cifar-count.js');

describe('Spark on YARN (tfos stack up --hosts 3 --yarn)', function () {
  this.timeout(900_000);
  let mh: MultiHostStack;
  let workerAddresses: string[];

  before(function () {
    const s = multiHostStack();
    if (!s?.status.yarn)
      return skipBecause(
        this,
        s
          ? 'the multi-host stack runs without YARN (TFOS_TEST_YARN=0)'
          : 'network namespaces cannot be made here (needs root and iproute2)',
      );
    mh = s;
    workerAddresses = mh.status.hosts!.filter((h) => h.roles.includes('nodemanager')).map((h) => h.address);
  });

  it('status reports the ResourceManager on host a and a running NodeManager per worker host', () => {
    expect(mh.status.yarn).to.deep.equal({ resourceManager: `http://${mh.status.hosts![0].address}:8088`, nodeManagers: 2, healthy: true });
    expect(workerAddresses).to.have.length(2);
  });

  it('tfos run --via spark-submit --master yarn: 3 nodes with 1 ps in YARN containers on the worker hosts', async () => {
    // The stack's HADOOP_CONF_DIR (found through TFOS_HOME) names the ResourceManager.
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        path.join(ROOT, 'bin/tfos.js'),
        'run',
        ALLREDUCE,
        '--via',
        'spark-submit',
        '--master',
        'yarn',
        '--cluster-size',
        '3',
        '--num-ps',
        '1',
        '--reservation-timeout',
        '600',
      ],
      { env: mh.env, timeout: 800_000, maxBuffer: 1 << 26 },
    ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`tfos run failed: ${err.message}\n${err.stderr ?? ''}`);
    });
    expect(stderr).to.match(/Spark application application_\d+_\d+ started on yarn/);
    const registered = [...stderr.matchAll(/registered as (\w+):\d+ \(executor (\S+), ([\d.]+):\d+/g)];
    expect(registered).to.have.length(3);
    for (const [, , executor, host] of registered) {
      expect(executor, 'executor id is the YARN container').to.match(/^container_/);
      expect(workerAddresses).to.include(host);
    }
    const returned = stdout + stderr;
    expect(returned.match(/"psWeights":\[-0\.3\d*,-0\.6\d*,-0\.9\d*\]/g)).to.have.length(2);
  });

  it('InputMode.SPARK via spark-submit to YARN: CIFAR-10 from HDFS fed exactly once, inference written', async () => {
    const data = await cifarOnStack(mh);
    const handle = await TFCluster.run({
      module: CIFAR_COUNT,
      numExecutors: 2,
      inputMode: InputMode.SPARK,
      args: { infer: true },
      via: { sparkSubmit: { master: 'yarn' } },
      reservationTimeout: 600,
    });
    try {
      const epochs = await handle.train(`${data}/train`);
      expect(epochs[0].workers.reduce((a, w) => a + w.rows, 0)).to.equal(CIFAR_RECORDS.train);
      const webhdfs = new WebHdfsClient({ url: mh.status.hdfs.webhdfs });
      await webhdfs.delete('/tfos-mh/yarn-predictions', { recursive: true });
      await handle.inference(`${data}/test`, {
        output: `${mh.status.hdfs.defaultFS}/tfos-mh/yarn-predictions`,
        resultSchema: 'prediction int',
      });
      const ids = [...(await handle.shutdown({ timeout: 180 })).values()].filter(Boolean).flatMap((r) => (r as { ids: number[] }).ids);
      expect(ids).to.have.length(CIFAR_RECORDS.train);
      expect(new Set(ids).size).to.equal(CIFAR_RECORDS.train);
      const parts = (await webhdfs.list('/tfos-mh/yarn-predictions')).map((f) => f.pathSuffix);
      expect(parts).to.include('_SUCCESS');
    } finally {
      await handle.kill().catch(() => undefined);
    }
  });

  it('a `tfos pack` archive on HDFS is shipped with --archives and YARN containers run the module from it', async () => {
    const project = makeProject();
    const archive = path.join(os.tmpdir(), `packme-yarn-${process.pid}.tgz`);
    const webhdfs = new WebHdfsClient({ url: mh.status.hdfs.webhdfs });
    try {
      await packProject({ projectDir: project, out: archive });
      await webhdfs.create('/tfos-mh/packme.tgz', fs.readFileSync(archive), { overwrite: true });
      const handle = await TFCluster.run({
        module: path.join(project, 'src', 'train.js'),
        numExecutors: 2,
        args: ['shipped'],
        via: { sparkSubmit: { master: 'yarn' } },
        archive: { uri: `${mh.status.hdfs.defaultFS}/tfos-mh/packme.tgz`, projectDir: project },
        reservationTimeout: 600,
      });
      const results = [...(await handle.shutdown({ timeout: 180 })).values()] as Array<{ cwd: string; file: string; args: unknown }>;
      expect(results).to.have.length(2);
      for (const r of results) {
        expect(r.args).to.deep.equal(['shipped']);
        // Localized by the NodeManager (its cache, linked into the container), not the project here.
        expect(r.file.startsWith(project)).to.equal(false);
        expect(r.file).to.match(/\/yarn\/nm\d\/local\/.*\/src\/train\.js$/);
      }
    } finally {
      fs.rmSync(project, { recursive: true, force: true });
      fs.rmSync(archive, { force: true });
    }
  });
});
