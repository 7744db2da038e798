/**
 * Where `tfos setup --notebook` put Jupyter and the tslab kernel, read-only: the runtime side of
 * `tfos notebook` never installs (lib/stack/notebook.ts does).
 *
 *   <TFOS_HOME>/tslab-<version>/node_modules/tslab   the TypeScript kernel (npm)
 *   <TFOS_HOME>/jupyter/kernels/tslab/kernel.json   its kernel spec (JUPYTER_PATH points here)
 *   Jupyter itself: notebook, nbclient, nbconvert in Spark's Python environment (PyPI)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NotProvisionedError } from './not-provisioned';
import { TfosPaths, tfosPaths } from './paths';
import { resolveSpark } from './spark';
import { VERSIONS } from './versions';

export interface NotebookInstall {
  /** Spark's Python environment's `jupyter` command. */
  jupyter: string;
  /** Folder for JUPYTER_PATH (holds kernels/tslab). */
  jupyterPath: string;
  kernelName: 'tslab';
}

export function notebookPaths(paths: TfosPaths = tfosPaths()): { tslabDir: string; jupyterPath: string; kernelDir: string } {
  const jupyterPath = path.join(paths.home, 'jupyter');
  return {
    tslabDir: path.join(paths.home, `tslab-${VERSIONS.notebook.tslab}`),
    jupyterPath,
    kernelDir: path.join(jupyterPath, 'kernels', 'tslab'),
  };
}

export function resolveNotebook(env: NodeJS.ProcessEnv = process.env): NotebookInstall {
  const spark = resolveSpark(env);
  const jupyter = path.join(path.dirname(spark.python), 'jupyter');
  const { jupyterPath, kernelDir } = notebookPaths(tfosPaths(env));
  const hint = 'run `tfos setup --notebook`';
  if (!fs.existsSync(jupyter)) throw new NotProvisionedError('Jupyter', jupyter, hint);
  if (!fs.existsSync(path.join(kernelDir, 'kernel.json'))) throw new NotProvisionedError('the tslab kernel', kernelDir, hint);
  return { jupyter, jupyterPath, kernelName: 'tslab' };
}

/** Environment for Jupyter: our kernel spec found first, and the interpreter's own tools on PATH. */
export function notebookEnv(nb: NotebookInstall, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    JUPYTER_PATH: [nb.jupyterPath, base.JUPYTER_PATH].filter(Boolean).join(path.delimiter),
    PATH: [path.dirname(nb.jupyter), path.dirname(process.execPath), base.PATH].filter(Boolean).join(path.delimiter),
  };
}
