/**
 * A .ts training module outside the repository runs as is through every route — the embedded local
 * Spark, `tfos run` with no route flags (the stack's standalone master), a Livy batch, a Livy
 * session, and spark-submit typed by hand — and every trainer computes on the package's one tfjs.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RouteOption, TFCluster } from '../../lib/driver/tf-cluster';
import { shellQuote, submitLine } from '../../lib/cli/submit-command';
import { runCaptured } from '../support/run-captured';
import { livySessionsOrWhyNot, requireStack } from '../support/stack';
import { skipBecause } from '../support/skip';
import { writeTsProject } from '../support/ts-module-fixture';

const TFOS = path.resolve(__dirname, '../../../bin/tfos.js');

interface Report {
  job: string;
  value: number;
  backend: string;
  sameEngine: boolean;
  args: unknown;
}

function expectReports(reports: Array<Report | null>): void {
  const workers = reports.filter(Boolean) as Report[];
  expect(workers.map((r) => r.job).sort()).to.deep.equal(['chief', 'worker']);
  for (const r of workers) {
    expect(r.value).to.equal(12); // 2 × (1 + 2 + 3), the helper from another .ts file
    expect(r.sameEngine, 'one tfjs engine').to.equal(true);
    expect(r.backend).to.equal('tensorflow');
    expect(r.args).to.deep.equal(['from', 'typescript']);
  }
}

describe('a .ts training module through every route', function () {
  // Each case starts a Spark application and a cluster; the shared 2-core machine can be slow.
  this.timeout(15 * 60_000);
  let train: string;
  before(() => {
    train = writeTsProject();
  });
  after(() => fs.rmSync(path.dirname(train), { recursive: true, force: true }));

  const viaApi = (name: string, via: () => RouteOption, unavailable?: () => string | undefined) =>
    it(`TFCluster.run via ${name}`, async function () {
      const why = unavailable?.();
      if (why) skipBecause(this, why);
      const handle = await TFCluster.run({
        module: train,
        numExecutors: 2,
        args: ['from', 'typescript'],
        via: via(),
        reservationTimeout: 300,
      });
      expectReports([...(await handle.shutdown({ timeout: 300 })).values()] as Array<Report | null>);
    });

  viaApi('the embedded local Spark', () => ({ local: {} }));
  viaApi('a Livy batch', () => ({ livy: { url: requireStack().livy, executorMemory: '512m', driverMemory: '512m' } }));
  viaApi(
    'a Livy session',
    () => ({ livy: { url: requireStack().livy, mode: 'session', executorMemory: '512m', driverMemory: '512m' } }),
    () => {
      const s = livySessionsOrWhyNot(requireStack());
      return s.ok ? undefined : s.why;
    },
  );

  it('tfos run train.ts with no route flags (the running stack)', async () => {
    requireStack();
    const { code, output } = await runCaptured(
      [process.execPath, TFOS, 'run', train, '--cluster-size', '2', '--reservation-timeout', '300', '--', 'from', 'typescript'],
      600_000,
    );
    expect(output).to.contain('submitted spark-submit --master spark://');
    expect(output).to.match(/chief:0\s*\| chief:0 computed 12 in TypeScript/);
    expect(output).to.match(/worker:0 returned \{"job":"worker","value":12,"backend":"tensorflow","sameEngine":true/);
    expect(code, output.slice(-3000)).to.equal(0);
  });

  it('spark-submit typed by hand with train.ts', async () => {
    const line = await submitLine([
      train,
      '--master',
      requireStack().sparkMaster,
      '--cluster-size',
      '2',
      '--reservation-timeout',
      '300',
      '--',
      'from',
      'typescript',
    ]);
    const text = [...Object.entries(line.env).map(([k, v]) => `${k}=${shellQuote(v)}`), ...line.argv.map(shellQuote)].join(' ');
    const { code, output } = await runCaptured(['bash', '-c', text], 600_000);
    expect(output).to.match(/worker:0 returned \{"job":"worker","value":12,"backend":"tensorflow","sameEngine":true/);
    expect(code, output.slice(-3000)).to.equal(0);
  });
});
