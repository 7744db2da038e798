/** A user project for `tfos pack` tests: its own copy of tfjs-on-spark and the dependencies trainers need. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const repo = path.resolve(__dirname, '../../..');

function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true, dereference: true });
}

/** A user project with its own (copied, not linked) tfjs-on-spark and the one dependency trainers need. */
export function makeProject(): string {
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
  // The package's runtime dependencies, as `npm install tfjs-on-spark` would bring them. tfjs-node
  // (native, loaded lazily) and the tfjs umbrella are left out to keep the archive small; tfjs-core
  // and tfjs-layers stay: importing the package registers its layers with them.
  const leftOut = new Set(['@tensorflow/tfjs-node', '@tensorflow/tfjs']);
  const seen = new Set<string>();
  const copyPackage = (name: string) => {
    if (seen.has(name) || leftOut.has(name)) return;
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
