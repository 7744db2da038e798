/**
 * GPUs come from Spark's resource scheduling: each trainer sees exactly the GPU(s) Spark assigned
 * to its task as CUDA_VISIBLE_DEVICES, and ps nodes see none. No GPU is needed: the worker's
 * discovery script reports four pretend GPUs, which is all Spark's scheduler looks at.
 * With the GPU build provisioned (`tfos setup --gpu`), trainers asked for it (TFOS_TFJS=gpu) run
 * tfjs-node-gpu on TensorFlow's CUDA build: with no device visible it trains on the CPU, so on a
 * machine with a GPU only the device is new.
 */
import { expect } from 'chai';
import * as path from 'node:path';
import { LogLine } from '../../lib/driver/cluster';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { findGpuBuild } from '../../lib/platform/gpu-build';
import { skipBecause } from '../support/skip';
import { PrivateStandalone, startPrivateStandalone } from '../support/standalone';

const fixtures = path.resolve(__dirname, '../../../test/fixtures');

describe('GPU assignment through Spark resource scheduling', function () {
  this.timeout(900_000);
  let cluster: PrivateStandalone | undefined;
  before(async () => {
    const script = path.join(fixtures, 'gpu', 'fake_gpus.sh');
    cluster = await startPrivateStandalone({
      cores: 4,
      workerOpts: `-Dspark.worker.resource.gpu.amount=4 -Dspark.worker.resource.gpu.discoveryScript=${script}`,
    });
  });
  after(async () => cluster?.stop());

  it('gives each worker its own GPU and the ps node none', async () => {
    const handle = await TFCluster.run({
      module: path.join(fixtures, 'modules', 'report-gpus.js'),
      numExecutors: 3,
      numPs: 1,
      gpusPerNode: 1,
      via: { sparkSubmit: { master: cluster!.master, conf: { 'spark.executor.memory': '512m' } } },
      // A fresh standalone's first executors on a loaded 2-core machine: 150–180 s was seen at load 26.
      reservationTimeout: 600,
    });
    const results = [...(await handle.shutdown({ timeout: 120 })).values()] as Array<{ job: string; cuda: string }>;
    const ps = results.filter((r) => r.job === 'ps');
    const trainers = results.filter((r) => r.job !== 'ps');
    expect(ps.map((r) => r.cuda)).to.deep.equal(['']);
    expect(trainers).to.have.length(2);
    for (const t of trainers) expect(t.cuda).to.match(/^[0-3]$/);
    expect(new Set(trainers.map((t) => t.cuda)).size, 'two trainers got the same GPU').to.equal(2);
  });

  it('TFOS_TFJS=gpu: trainers load tfjs-node-gpu (CUDA libraries from the build), report backend and devices, and train a few steps', async function () {
    const build = findGpuBuild();
    if (!build) {
      return skipBecause(
        this,
        'the GPU build of tfjs-node is not provisioned in TFOS_HOME (about 2.4 GB from PyPI, so npm test does not fetch it): run `node bin/tfos.js setup --gpu` once',
      );
    }
    const logs: LogLine[] = [];
    const handle = await TFCluster.run({
      module: path.join(fixtures, 'gpu', 'train-few-steps.js'),
      numExecutors: 2,
      gpusPerNode: 1,
      env: { TFOS_TFJS: 'gpu' },
      via: { sparkSubmit: { master: cluster!.master, conf: { 'spark.executor.memory': '512m' } } },
      // A fresh standalone's first executors on a loaded 2-core machine: 150–180 s was seen at load 26.
      reservationTimeout: 600,
      onHandle: (h) => h.on('log', (l: LogLine) => logs.push(l)),
    });
    const results = [...(await handle.shutdown({ timeout: 300 })).values()] as Array<{
      job: string;
      loaded: string;
      backend: string;
      losses: number[];
      cudart: string | null;
      cuda: string;
    }>;
    expect(results).to.have.length(2);
    for (const r of results) {
      // The module asked for @tensorflow/tfjs-node and got the GPU build in TFOS_HOME.
      expect(r.loaded.startsWith(build.packageDir + path.sep), r.loaded).to.equal(true);
      expect(r.backend).to.equal('tensorflow');
      // TensorFlow opened the CUDA runtime from the build's library path (then found no device).
      expect(r.cudart).to.be.a('string');
      expect(build.libraryPath).to.include(path.dirname(r.cudart!));
      expect(r.cuda).to.match(/^[0-3]$/);
      expect(r.losses).to.have.length(5);
      expect(r.losses[4]).to.be.below(r.losses[0]);
    }
    // Each trainer said what it got, and the driver relayed it under the node's label.
    const said = logs.filter((l) => l.line.startsWith('tfos: backend ')).map((l) => `${l.label} ${l.line}`);
    expect(said).to.have.length(2);
    for (const line of said)
      expect(line).to.match(/^(chief|worker):0 tfos: backend tensorflow \(GPU build\), devices: CPU:0 \(CUDA_VISIBLE_DEVICES=[0-3]\)$/);
  });
});
