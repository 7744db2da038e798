/**
 * A TypeScript training project outside the repository: train.ts imports the package's TFNode and
 * tf and a helper of its own, and its node_modules holds decoy copies of tfjs-on-spark and
 * tfjs-node that throw when loaded — a trainer must use the package's own copies instead.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const TRAIN_TS = `import { TFNode, tf, type TFNodeContext } from 'tfjs-on-spark';
import * as direct from '@tensorflow/tfjs-node';
import { double } from './helper';

export interface Report {
  job: string;
  value: number;
  backend: string;
  sameEngine: boolean;
  args: unknown;
}

export default async function train(args: string[], ctx: TFNodeContext): Promise<Report | null> {
  const { server } = await TFNode.startClusterServer(ctx);
  if (ctx.jobName === 'ps') {
    await server.join();
    return null;
  }
  const sum = tf.tidy(() => tf.tensor1d([1, 2, 3]).sum());
  const value = double((await sum.data())[0]);
  sum.dispose();
  console.log(\`\${ctx.jobName}:\${ctx.taskIndex} computed \${value} in TypeScript\`);
  return { job: ctx.jobName, value, backend: tf.getBackend(), sameEngine: direct.engine() === tf.engine(), args };
}
`;

export const HELPER_TS = `export function double(x: number): number {
  return 2 * x;
}
`;

/** Writes the project into a fresh temp folder; returns the path of train.ts. */
export function writeTsProject(files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-ts-project-'));
  const all: Record<string, string> = {
    'train.ts': TRAIN_TS,
    'helper.ts': HELPER_TS,
    'node_modules/tfjs-on-spark/package.json': '{"name":"tfjs-on-spark","main":"index.js"}',
    'node_modules/tfjs-on-spark/index.js': "throw new Error('decoy tfjs-on-spark loaded: a second copy of the package');",
    'node_modules/@tensorflow/tfjs-node/package.json': '{"name":"@tensorflow/tfjs-node","main":"index.js"}',
    'node_modules/@tensorflow/tfjs-node/index.js': "throw new Error('decoy tfjs-node loaded: a second tfjs engine');",
    ...files,
  };
  for (const [name, text] of Object.entries(all)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return path.join(dir, 'train.ts');
}
