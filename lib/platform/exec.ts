/**
 * Running external programs to completion (pip, mvn, tar, java, spark-class).
 * Every failure names the command and ends with the tail of its output, so a user never has to
 * guess which of the dozen steps of `tfos setup` broke.
 */
import { spawn, SpawnOptions } from 'node:child_process';
import { killGroup } from './process-group';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the command (and its process group) after this many milliseconds. */
  timeoutMs?: number;
  /** Called with each chunk of combined output, e.g. to show progress. */
  onOutput?: (chunk: string) => void;
  /** Text sent to stdin, then closed. stdin is /dev/null otherwise. */
  input?: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number | null,
    readonly output: string,
    reason: string,
  ) {
    super(`${reason}: ${command}\n${tail(output, 40)}`);
    this.name = 'CommandError';
  }
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function describeCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map(quote).join(' ');
}

/** Runs a command to completion; rejects with CommandError on a non-zero exit or a timeout. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return runAllowingFailure(cmd, args, opts).then((res) => {
    if (res.code !== 0) {
      throw new CommandError(describeCommand(cmd, args), res.code, res.stdout + res.stderr, `exit code ${res.code}`);
    }
    return res;
  });
}

/** Like run, but resolves with any exit code (still rejects if the program cannot start or times out). */
export function runAllowingFailure(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      // Own process group, so a timeout can kill the whole tree (mvn and spark-submit fork JVMs).
      detached: true,
    };
    const child = spawn(cmd, args as string[], spawnOpts);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          killGroup(child.pid);
        }, opts.timeoutMs)
      : undefined;
    // If our own process exits (Ctrl-C, test runner ends), don't leave the command running.
    const onExit = () => killGroup(child.pid);
    process.once('exit', onExit);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      opts.onOutput?.(d);
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      opts.onOutput?.(d);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      process.removeListener('exit', onExit);
      reject(new CommandError(describeCommand(cmd, args), null, String(err), `cannot start ${cmd} (${err.message})`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      process.removeListener('exit', onExit);
      if (timedOut) {
        reject(new CommandError(describeCommand(cmd, args), code, stdout + stderr, `timed out after ${opts.timeoutMs} ms`));
        return;
      }
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}
