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
import { requireStack } from '../support/stack';

const repo = path.resolve(__dirname, '../../..');

function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true, dereference: true });
}

/** A user project with its own (copied, not linked) tfjs-on-spark and the one dependency trainers need. */
function makeProject(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-packme-'));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'packme', version: '1.0.0', private: true }));
  fs.mkdirSync(path.join(dir, 'src'));
  fs.writeFileSync(
    path.join(dir, 'src', 'train.js'),
    `const { TFNode } = require('tfjs-on-spark');\n` +
      `module.exports = async (args, ctx) => {\n` +
      `  const { server } = await TFNode.startClusterServer(ctx);\n` +
      `  if (ctx.jobName === 'ps') await server.join();\n` +
      `  return { job: ctx.jobName, cwd: process.cwd(), file: __filename, node: process.execPath, args };\n` +
      `};\n`,
  );
  const pkg = path.join(dir, 'node_modules', 'tfjs-on-spark');
  fs.mkdirSync(pkg, { recursive: true });
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(pkg, 'package.json'));
  copyDir(path.join(repo, 'dist', 'lib'), path.join(pkg, 'dist', 'lib'));
  copyDir(path.join(repo, 'esm'), path.join(pkg, 'esm'));
  // The package's runtime dependencies, as `npm install tfjs-on-spark` would bring them (tfjs-node,
  // loaded lazily, is left out to keep the archive small).
  const seen = new Set<string>();
  const copyPackage = (name: string) => {
    if (seen.has(name) || name.startsWith('@tensorflow/')) return;
    seen.add(name);
    const src = path.join(repo, 'node_modules', name);
    if (!fs.existsSync(src)) return;
    copyDir(src, path.join(dir, 'node_modules', name));
    const pkg = JSON.parse(fs.readFileSync(path.join(src, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) copyPackage(dep);
  };
  const own = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(own.dependencies)) copyPackage(dep);
  return dir;
}

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
        const results = [...(await handle.shutdown({ timeout: 120 })).values()] as Array<{ job: string; cwd: string; file: string; node: string; args: unknown }>;
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
