/**
 * The distributed layer on a real cluster: TFCluster.run on the embedded local Spark with 2
 * workers + 1 ps; the workers allReduce / broadcast / barrier over direct connections and train a
 * variable through the ps (sync).
 */
import { expect } from 'chai';
import * as path from 'node:path';
import { TFCluster } from '../../lib/driver/tf-cluster';

const MODULE = path.resolve(__dirname, '../../../test/fixtures/distributed/allreduce-module.js');

interface Report {
  jobName: string;
  rank: number;
  size?: number;
  sum?: number[];
  mean?: number;
  bcast?: number[];
  psWeights?: number[];
  allReduceMs?: number;
}

describe('distributed layer on TFCluster.run (embedded local Spark)', function () {
  this.timeout(180_000);

  it('2 workers + 1 ps: allReduce, broadcast, barrier and a sync ps step across processes', async () => {
    const size = 1_000_003;
    const started = Date.now();
    const handle = await TFCluster.run({
      module: MODULE,
      numExecutors: 3,
      numPs: 1,
      args: { size },
      via: { local: {} },
      reservationTimeout: 120,
    });
    const results = (await handle.shutdown({ timeout: 120 })) as Map<number, Report>;
    const reports = [...results.values()];
    const workers = reports.filter((r) => r.jobName !== 'ps').sort((a, b) => a.rank - b.rank);
    expect(reports.filter((r) => r.jobName === 'ps')).to.have.length(1);
    expect(workers.map((w) => [w.jobName, w.rank, w.size])).to.deep.equal([
      ['chief', 0, 2],
      ['worker', 1, 2],
    ]);
    for (const w of workers) {
      // (1 + 2) * (i % 100)
      expect(w.sum).to.deep.equal([0, 3, 297, 3 * ((size - 1) % 100)]);
      expect(w.mean).to.equal(5);
      expect(w.bcast).to.deep.equal([42, 7]);
      // w -= 0.1 * mean(c_chief, c_worker) twice; c_r = [1,2,3] * (r + 1)
      expect(w.psWeights!.map((v) => +v.toFixed(5))).to.deep.equal([-0.3, -0.6, -0.9]);
    }
    console.log(
      `      (cluster run ${((Date.now() - started) / 1000).toFixed(1)} s; allReduce of 1 M floats ${workers[0].allReduceMs} ms incl. connection set-up)`,
    );
  });
});
