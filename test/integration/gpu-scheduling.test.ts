/**
 * GPUs come from Spark's resource scheduling: each trainer sees exactly the GPU(s) Spark assigned
 * to its task as CUDA_VISIBLE_DEVICES, and ps nodes see none. No GPU is needed: the worker's
 * discovery script reports four pretend GPUs, which is all Spark's scheduler looks at.
 */
import { expect } from 'chai';
import * as path from 'node:path';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { PrivateStandalone, startPrivateStandalone } from '../support/standalone';

const fixtures = path.resolve(__dirname, '../../../test/fixtures');

describe('GPU assignment through Spark resource scheduling', function () {
  this.timeout(600_000);
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
      reservationTimeout: 180,
    });
    const results = [...(await handle.shutdown({ timeout: 120 })).values()] as Array<{ job: string; cuda: string }>;
    const ps = results.filter((r) => r.job === 'ps');
    const trainers = results.filter((r) => r.job !== 'ps');
    expect(ps.map((r) => r.cuda)).to.deep.equal(['']);
    expect(trainers).to.have.length(2);
    for (const t of trainers) expect(t.cuda).to.match(/^[0-3]$/);
    expect(new Set(trainers.map((t) => t.cuda)).size, 'two trainers got the same GPU').to.equal(2);
  });
});
