/**
 * `tfos notebook`: Jupyter with the tslab TypeScript kernel (installed by `tfos setup --notebook`),
 * on loopback; `tfos notebook --execute NB --output OUT` runs a notebook headlessly (nbconvert's
 * executor, the same nbclient Jupyter uses) and writes it with its outputs. A notebook talks to
 * the running `tfos stack` with no configuration, like every command.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { notebookEnv, resolveNotebook } from '../platform/notebook';

export const NOTEBOOK_USAGE = `tfos notebook [--dir DIR] [--port P]   Jupyter with the TypeScript (tslab) kernel, on 127.0.0.1
  tfos notebook --execute NB --output OUT [--timeout SEC]   run a notebook headlessly, outputs saved`;

function runChild(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: 'inherit' });
    child.once('error', (err) => reject(new Error(`cannot run ${cmd}: ${err.message}`)));
    // Ctrl-C reaches Jupyter too (same terminal); wait for it to shut its kernels down.
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    child.once('close', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

export async function notebookCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      execute: { type: 'string' },
      output: { type: 'string' },
      timeout: { type: 'string' },
      dir: { type: 'string' },
      port: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(`usage: ${NOTEBOOK_USAGE}`);
    return 0;
  }
  if (positionals.length)
    throw new Error(
      `tfos notebook takes no positional arguments (got ${positionals.join(' ')}); to run a notebook: --execute NB --output OUT`,
    );
  const nb = resolveNotebook();
  const env = notebookEnv(nb);
  if (values.execute) {
    if (!values.output) throw new Error('--execute NB needs --output OUT (where the executed notebook is written)');
    const timeout = Number(values.timeout ?? 3600);
    if (!(timeout > 0)) throw new Error(`--timeout must be a positive number of seconds, got '${values.timeout}'`);
    const input = path.resolve(values.execute);
    const output = path.resolve(values.output);
    // The kernel starts in the notebook's folder, as in Jupyter, so relative paths mean the same.
    return runChild(
      nb.jupyter,
      [
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        input,
        '--output',
        path.basename(output),
        '--output-dir',
        path.dirname(output),
        `--ExecutePreprocessor.kernel_name=${nb.kernelName}`,
        `--ExecutePreprocessor.timeout=${timeout}`,
      ],
      env,
      path.dirname(input),
    );
  }
  const port = values.port ?? '8888';
  return runChild(
    nb.jupyter,
    ['notebook', '--no-browser', '--ip=127.0.0.1', `--port=${port}`, `--notebook-dir=${path.resolve(values.dir ?? '.')}`],
    env,
    process.cwd(),
  );
}
