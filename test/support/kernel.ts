/**
 * A live Jupyter kernel for a test, as a notebook user has it: cells run one after another in one
 * kernel process, their output arrives while they run, and the kernel can be interrupted mid-cell.
 * Jupyter's own client (jupyter_client, through kernel_driver.py) talks to the kernel.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { NotebookInstall, notebookEnv } from '../../lib/platform/notebook';

const DRIVER = path.resolve(__dirname, '../../../test/support/kernel_driver.py');

interface DriverMessage {
  type: 'ready' | 'sent' | 'iopub' | 'shell';
  tag?: number;
  id?: string;
  msg_type?: string;
  parent?: string;
  content?: { name?: string; text?: string; ename?: string; evalue?: string; status?: string; execution_state?: string };
}

export interface CellResult {
  /** execute_reply's status: ok, error or aborted. */
  status: string;
  /** What the cell printed (stdout and stderr streams). */
  text: string;
  /** `ename: evalue` of an error output, if any. */
  error?: string;
}

/** One executed cell: its output so far, and its end. */
export class Cell {
  text = '';
  error?: string;
  private status?: string;
  private idle = false;
  private waiters: Array<() => void> = [];
  readonly done: Promise<CellResult>;
  private finish!: (r: CellResult) => void;

  constructor(readonly code: string) {
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  /** Resolves once the cell's output matches `pattern`; rejects if the cell ends first. */
  async printed(pattern: RegExp): Promise<RegExpExecArray> {
    for (;;) {
      const m = pattern.exec(this.text);
      if (m) return m;
      if (this.status && this.idle)
        throw new Error(`the cell ended (${this.status}) without printing ${pattern}:\n${this.text.slice(-3000)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** @internal */
  receive(m: DriverMessage): void {
    const c = m.content ?? {};
    if (m.type === 'iopub' && m.msg_type === 'stream') this.text += c.text ?? '';
    if (m.type === 'iopub' && m.msg_type === 'error') this.error = `${c.ename}: ${c.evalue}`;
    if (m.type === 'iopub' && m.msg_type === 'status' && c.execution_state === 'idle') this.idle = true;
    if (m.type === 'shell' && m.msg_type === 'execute_reply') {
      this.status = c.status;
      if (c.status === 'error' && !this.error && c.ename) this.error = `${c.ename}: ${c.evalue}`;
    }
    for (const w of this.waiters.splice(0)) w();
    if (this.status && this.idle) this.finish({ status: this.status, text: this.text, error: this.error });
  }
}

export class KernelSession {
  private readonly byTag = new Map<number, Cell>();
  private readonly byId = new Map<string, Cell>();
  private nextTag = 0;
  private log = '';

  private constructor(private readonly driver: ChildProcessWithoutNullStreams) {}

  /** Starts the kernel named by `nb` (tslab) in `cwd`; resolves once it answers. */
  static async start(nb: NotebookInstall, python: string, cwd: string): Promise<KernelSession> {
    const driver = spawn(python, [DRIVER, nb.kernelName, cwd], { env: notebookEnv(nb), stdio: ['pipe', 'pipe', 'pipe'] });
    const session = new KernelSession(driver);
    driver.stderr.on('data', (c: Buffer) => (session.log = (session.log + c.toString()).slice(-20_000)));
    const ready = new Promise<void>((resolve, reject) => {
      driver.once('close', (code) => reject(new Error(`the kernel driver exited (${code}) before the kernel was ready:\n${session.log}`)));
      readline.createInterface({ input: driver.stdout }).on('line', (line) => {
        const m = JSON.parse(line) as DriverMessage;
        if (m.type === 'ready') resolve();
        else session.dispatch(m);
      });
    });
    await ready;
    return session;
  }

  /** Runs `code` as the next cell. */
  run(code: string): Cell {
    const cell = new Cell(code);
    const tag = this.nextTag++;
    this.byTag.set(tag, cell);
    this.driver.stdin.write(`${JSON.stringify({ op: 'execute', tag, code })}\n`);
    return cell;
  }

  /** The kernel's interrupt (Jupyter's ■ button): SIGINT to the kernel process. */
  interrupt(): void {
    this.driver.stdin.write(`${JSON.stringify({ op: 'interrupt' })}\n`);
  }

  /** Shuts the kernel down and waits for the driver to exit. */
  async close(): Promise<void> {
    if (this.driver.exitCode !== null || this.driver.signalCode !== null) return;
    const closed = new Promise<void>((r) => this.driver.once('close', () => r()));
    this.driver.stdin.end(`${JSON.stringify({ op: 'shutdown' })}\n`);
    await closed;
  }

  private dispatch(m: DriverMessage): void {
    if (m.type === 'sent') {
      this.byId.set(m.id!, this.byTag.get(m.tag!)!);
      return;
    }
    const cell = m.parent ? this.byId.get(m.parent) : undefined;
    cell?.receive(m);
  }
}
