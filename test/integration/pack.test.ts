/**
 * `tfos pack` + the archive option: a project that executors have no copy of runs from the archive
 * Spark unpacks into each executor's directory (real standalone master, TFOS_TEST_SPARK_MASTER).
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packProject } from '../../lib/driver/pack';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { makeProject } from '../support/pack-project';
import { requireStack } from '../support/stack';

describe('tfos pack: running from a shipped archive', function () {
  this.timeout(300_000);
  let project: string;
  let master: string;
  before(function () {
    master = requireStack().sparkMaster;
    project = makeProject();
  });
  after(() => project && fs.rmSync(project, { recursive: true, force: true }));

  it('refuses a directory that is not a Node project, naming it', async () => {
    const err = await packProject({ projectDir: os.tmpdir(), out: '/tmp/x.tgz' }).catch((e: Error) => e);
    expect((err as Error).message).to.contain(`${os.tmpdir()} is not a Node project`);
  });

  for (const withNode of [false, true]) {
    it(`trainers run the packed module from the executor's copy${withNode ? ', with the bundled Node binary' : ''}`, async () => {
      const archive = path.join(os.tmpdir(), `packme-${process.pid}-${withNode}.tgz`);
      try {
        const packed = await packProject({ projectDir: project, out: archive, withNode });
        expect(packed.bytes).to.be.above(1000);
        const handle = await TFCluster.run({
          module: path.join(project, 'src', 'train.js'),
          numExecutors: 2,
          args: ['shipped'],
          via: { sparkSubmit: { master, conf: { 'spark.executor.memory': '512m' } } },
          archive: { uri: archive, projectDir: project, bundledNode: withNode },
          reservationTimeout: 180,
        });
        const results = [...(await handle.shutdown({ timeout: 120 })).values()] as Array<{
          job: string;
          cwd: string;
          file: string;
          node: string;
          args: unknown;
        }>;
        expect(results).to.have.length(2);
        for (const r of results) {
          expect(r.args).to.deep.equal(['shipped']);
          // Loaded from the executor's unpacked copy, not from the project on this machine.
          expect(r.file).to.match(/\/tfos-app\/src\/train\.js$/);
          expect(r.file.startsWith(project)).to.equal(false);
          if (withNode) expect(r.node).to.match(/\/tfos-app\/\.tfos-node\/bin\/node$/);
        }
      } finally {
        fs.rmSync(archive, { force: true });
      }
    });
  }
});
