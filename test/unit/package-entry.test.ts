import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const repo = path.resolve(__dirname, '../../..');

/** A user project whose node_modules/tfjs-on-spark is a symlink to this checkout. */
function userProject(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-user-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(repo, path.join(dir, 'node_modules', 'tfjs-on-spark'), 'dir');
  return dir;
}

describe('package entry points', () => {
  let dir: string;
  before(() => (dir = userProject()));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('imports TFCluster, TFNode and InputMode from ESM', () => {
    fs.writeFileSync(
      path.join(dir, 'use.mjs'),
      `import { TFCluster, TFNode, InputMode } from 'tfjs-on-spark';\n` +
        `console.log(typeof TFCluster.run, typeof TFNode.startClusterServer, InputMode.SPARK);\n`,
    );
    const out = execFileSync(process.execPath, ['use.mjs'], { cwd: dir }).toString().trim();
    expect(out).to.equal('function function spark');
  });

  it('requires the same objects from CommonJS', () => {
    fs.writeFileSync(
      path.join(dir, 'use.cjs'),
      `const { TFCluster, TFNode, InputMode } = require('tfjs-on-spark');\n` +
        `import('tfjs-on-spark').then((esm) => console.log(esm.TFCluster === TFCluster && esm.TFNode === TFNode, InputMode.TENSORFLOW));\n`,
    );
    const out = execFileSync(process.execPath, ['use.cjs'], { cwd: dir }).toString().trim();
    expect(out).to.equal('true tensorflow');
  });

  it('exposes every CommonJS export through the ESM entry', async () => {
    const cjs = require(path.join(repo, 'dist/lib/index.js'));
    const esmSource = fs.readFileSync(path.join(repo, 'esm/index.mjs'), 'utf8');
    for (const name of Object.keys(cjs)) expect(esmSource, `esm/index.mjs re-exports ${name}`).to.include(name);
  });
});
