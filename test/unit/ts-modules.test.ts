/**
 * User modules in TypeScript, one tfjs: a .ts training module outside the repository is
 * type-checked against the package's own types before anything starts, runs as is in a trainer,
 * and shares the package's tfjs engine even with other copies installed beside it.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModuleTypeError, typeCheckModule } from '../../lib/driver/type-check';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { rejection } from '../support/rejection';
import { writeTsProject } from '../support/ts-module-fixture';

const USER_MODULES = path.resolve(__dirname, '../../lib/node/user-modules.js');

describe('TypeScript training modules', () => {
  const made: string[] = [];
  const project = (files?: Record<string, string>) => {
    const train = writeTsProject(files);
    made.push(path.dirname(train));
    return train;
  };
  after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('a module outside the repo type-checks against the package types (tfjs-on-spark, its tfjs, a helper of its own)', function () {
    this.timeout(120_000);
    typeCheckModule(project());
  });

  it('a type error fails TFCluster.run at once with file:line:column, before any Spark work', async function () {
    this.timeout(120_000);
    const train = project({
      'helper.ts': 'export function double(x: number): number {\n  const twice: string = 2 * x;\n  return twice;\n}\n',
    });
    const err = await rejection(TFCluster.run({ module: train, numExecutors: 1 }));
    expect(err).to.be.instanceOf(ModuleTypeError);
    expect(err.message).to.contain(
      `${path.join(path.dirname(train), 'helper.ts')}:2:9 TS2322: Type 'number' is not assignable to type 'string'.`,
    );
  });

  it('misuse of the package API is a type error too (ctx fields, TFNode calls)', function () {
    this.timeout(120_000);
    const train = project({
      'train.ts':
        "import { TFNode, type TFNodeContext } from 'tfjs-on-spark';\nexport default async (_a: unknown, ctx: TFNodeContext) => TFNode.dataFeed(ctx, { path: 42 });\n",
    });
    expect(() => typeCheckModule(train)).to.throw(ModuleTypeError, /train\.ts:2:\d+ TS2322/);
  });

  it("README's TypeScript snippets (driver.ts, train.ts) type-check against the package", function () {
    this.timeout(180_000);
    const readme = fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```ts\n(\/\/ (\w+\.ts)[^\n]*\n[\s\S]*?)```/g)];
    expect(blocks.map((b) => b[2])).to.include.members(['driver.ts', 'train.ts']);
    for (const [, code, name] of blocks) {
      // Top-level await needs an ES module; the snippet's body is checked inside an async function.
      const body = name === 'driver.ts' ? code.replace(/^(const cluster = await[\s\S]*)$/m, 'export async function main() {\n$1\n}') : code;
      const file = project({ [name]: body });
      typeCheckModule(path.join(path.dirname(file), name));
    }
  });

  it("in a trainer process, the .ts module and its .ts imports run as is, on the package's one tfjs engine", function () {
    this.timeout(120_000);
    const train = project();
    const script = `
      require(${JSON.stringify(USER_MODULES)}).installUserModuleHooks();
      const m = require(${JSON.stringify(train)});
      const { tf } = require('tfjs-on-spark');
      const direct = require('@tensorflow/tfjs-node');
      console.log(JSON.stringify({ fn: typeof m.default, sameEngine: direct.engine() === tf.engine(), backend: tf.getBackend() }));`;
    const out = execFileSync(process.execPath, ['-e', script], {
      cwd: path.dirname(train),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(JSON.parse(out.trim().split('\n').pop()!)).to.deep.equal({ fn: 'function', sameEngine: true, backend: 'tensorflow' });
  });
});
