/**
 * `tfos setup --notebook`: Jupyter (notebook, nbclient, nbconvert from PyPI, into Spark's Python
 * environment) and the tslab TypeScript kernel (npm, into TFOS_HOME), with the kernel spec that
 * starts tslab on this Node. Idempotent: each part is skipped when already there.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../platform/exec';
import { Logger } from '../platform/log';
import { notebookPaths, NotebookInstall, resolveNotebook } from '../platform/notebook';
import { TfosPaths } from '../platform/paths';
import { SparkInstall } from '../platform/spark';
import { VERSIONS } from '../platform/versions';

const MARKER = '.tfos-complete';

export async function provisionNotebook(
  paths: TfosPaths,
  spark: SparkInstall,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<NotebookInstall> {
  const v = VERSIONS.notebook;
  const jupyter = path.join(path.dirname(spark.python), 'jupyter');
  const started = Date.now();
  if (!fs.existsSync(jupyter) || !fs.existsSync(path.join(path.dirname(spark.python), 'jupyter-nbconvert'))) {
    log(`installing Jupyter (notebook ${v.notebook}, nbclient ${v.nbclient}, nbconvert ${v.nbconvert}) into ${spark.pythonEnv}`);
    await run(
      spark.python,
      ['-m', 'pip', 'install', '-q', `notebook==${v.notebook}`, `nbclient==${v.nbclient}`, `nbconvert==${v.nbconvert}`],
      {
        timeoutMs: 20 * 60_000,
        env: { ...env, PIP_NO_INPUT: '1' },
      },
    );
  }
  const { tslabDir, kernelDir } = notebookPaths(paths);
  if (!fs.existsSync(path.join(tslabDir, MARKER))) {
    log(`installing tslab ${v.tslab} (npm) into ${tslabDir}`);
    const staging = `${tslabDir}.tmp-${process.pid}`;
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    try {
      // zeromq ships its native binding in the package; no install script needs to run.
      await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefix', staging, `tslab@${v.tslab}`], {
        timeoutMs: 20 * 60_000,
        env,
      });
      fs.writeFileSync(path.join(staging, MARKER), new Date().toISOString());
      fs.rmSync(tslabDir, { recursive: true, force: true });
      fs.renameSync(staging, tslabDir);
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw err;
    }
  }
  fs.mkdirSync(kernelDir, { recursive: true });
  const spec = {
    argv: [process.execPath, path.join(tslabDir, 'node_modules', 'tslab', 'bin', 'tslab'), 'kernel', '--config-path', '{connection_file}'],
    display_name: 'TypeScript (tslab)',
    language: 'typescript',
    interrupt_mode: 'signal',
  };
  fs.writeFileSync(path.join(kernelDir, 'kernel.json'), `${JSON.stringify(spec, null, 2)}\n`);
  linkPackageIntoItself(log);
  log(`Jupyter with the tslab kernel ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return resolveNotebook(env);
}

/**
 * Notebooks in this repository import 'tfjs-on-spark' like a user's project does; the kernel (and
 * its type checker) resolve it through node_modules, so the package links itself there. In a
 * user's project it is installed there already.
 */
function linkPackageIntoItself(log: Logger): void {
  const root = path.resolve(__dirname, '../../..');
  const link = path.join(root, 'node_modules', 'tfjs-on-spark');
  if (!fs.existsSync(path.join(root, 'node_modules')) || path.basename(path.dirname(root)) === 'node_modules') return;
  if (fs.existsSync(link)) return;
  fs.symlinkSync('..', link);
  log(`linked ${link} -> ${root} (for notebooks in this repository)`);
}
