/**
 * Jupyter via tslab: examples/notebooks/cifar10.ipynb executed headlessly with the tslab kernel
 * (`tfos notebook --execute`, nbconvert's executor) against the stack: every cell runs without
 * error, the loss/accuracy plot is a PNG, inference shows images with labels, the model beats
 * chance, and the cluster is shut down with nothing left behind. And a kernel interrupt while a
 * cell trains stops that cluster, and the next cell starts a new one.
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveNotebook } from '../../lib/platform/notebook';
import { resolveSpark } from '../../lib/platform/spark';
import { KernelSession } from '../support/kernel';
import { clusterProcesses, describeProcesses, waitFor } from '../support/processes';
import { requireStack } from '../support/stack';

const REPO = path.resolve(__dirname, '../../..');
const NOTEBOOK = path.join(REPO, 'examples', 'notebooks', 'cifar10.ipynb');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'modules');

interface Output {
  output_type: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
}

const text = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join('') : (v ?? ''));

function notebookTrainers(): number[] {
  try {
    return execFileSync('pgrep', ['-f', 'trainer-main.js'])
      .toString()
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter((pid) => {
        try {
          return (
            fs.readFileSync(`/proc/${pid}/environ`, 'utf8').includes('cifar10-train.ts') ||
            fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('cifar10-train')
          );
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

describe('the CIFAR-10 notebook (tslab), executed headlessly against the stack', function () {
  this.timeout(30 * 60_000);
  let dir: string;
  before(() => {
    requireStack();
    resolveNotebook(); // fails naming `tfos setup --notebook` when Jupyter or tslab is missing
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-notebook-'));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('runs every cell: live progress, a PNG plot, labelled inference images, accuracy above chance, clean shutdown', async () => {
    const out = path.join(dir, 'cifar10.out.ipynb');
    const { code, log } = await new Promise<{ code: number | null; log: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [path.join(REPO, 'bin', 'tfos.js'), 'notebook', '--execute', NOTEBOOK, '--output', out, '--timeout', '1500'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let all = '';
      child.stdout.on('data', (c: Buffer) => (all += c.toString()));
      child.stderr.on('data', (c: Buffer) => (all += c.toString()));
      child.once('close', (c) => resolve({ code: c, log: all }));
    });
    expect(code, log.slice(-4000)).to.equal(0);
    const cells = (JSON.parse(fs.readFileSync(out, 'utf8')) as { cells: Cell[] }).cells.filter((c) => c.cell_type === 'code');
    const outputs = cells.flatMap((c) => c.outputs ?? []);
    expect(outputs.filter((o) => o.output_type === 'error').map((o) => `${o.ename}: ${o.evalue}`)).to.deep.equal([]);
    const printed = outputs.map((o) => text(o.text)).join('');
    // Live progress: the chief's lines every 10 steps, up to the last.
    expect(printed).to.match(/step {2}10 {2}loss \d+\.\d{3} {2}accuracy \d\.\d{3}/);
    expect(printed).to.match(/step 200 {2}loss/);
    const accuracy = Number(/test accuracy (\d\.\d+)/.exec(printed)?.[1]);
    expect(accuracy, 'test accuracy above chance (0.1)').to.be.greaterThan(0.1);
    const png = outputs.find((o) => o.output_type === 'display_data' && o.data?.['image/png']);
    expect(png, 'the plot is an image/png output').to.not.equal(undefined);
    expect(Buffer.from(text(png!.data!['image/png']), 'base64').subarray(1, 4).toString()).to.equal('PNG');
    const gallery = text(outputs.find((o) => o.data?.['text/html'])?.data?.['text/html']);
    expect(gallery.match(/<img src="data:image\/png;base64,/g)).to.have.length(8);
    expect(gallery).to.match(/<figcaption>(airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck)/);
    expect(printed).to.match(/cluster finished; node results:/);
    expect(notebookTrainers(), 'trainers left behind').to.deep.equal([]);
  });
});

describe('a kernel interrupt while a notebook cell trains (tslab, stopOnInterrupt)', function () {
  this.timeout(10 * 60_000);
  let kernel: KernelSession | undefined;
  before(() => resolveNotebook());
  after(async () => kernel?.close());

  it('stops that cluster (no process of it left, the handle failed naming the interrupt); the next cell starts a new cluster that finishes', async () => {
    // In the notebooks' folder, as `tfos notebook` runs them: 'tfjs-on-spark' resolves to this package.
    kernel = await KernelSession.start(resolveNotebook(), resolveSpark().python, path.dirname(NOTEBOOK));
    // As the notebook does it: one cell starts the cluster and keeps its handle, the next waits for training.
    const started = await kernel.run(`
      import { TFCluster } from 'tfjs-on-spark';
      const first = await TFCluster.run({
        module: ${JSON.stringify(path.join(FIXTURES, 'trains-forever.js'))},
        numExecutors: 2,
        via: { local: {} },
        stopOnInterrupt: true,
        reservationTimeout: 300,
        onHandle: (h) => h.on('log', (l: { label: string; line: string }) => console.log(\`\${l.label} | \${l.line}\`)),
      });
      console.log(\`cluster \${first.clusterId} \${first.state}\`);
    `).done;
    expect(started.error, started.text.slice(-3000)).to.equal(undefined);
    const clusterId = /cluster (\S+) running/.exec(started.text)?.[1];
    expect(clusterId, started.text.slice(-3000)).to.be.a('string');
    const training = kernel.run('await first.shutdown({ timeout: 600 });');
    await training.printed(/(chief|worker):0 \| step 3 on/);
    expect(clusterProcesses(clusterId!), 'the cluster trains').to.not.deep.equal([]);

    kernel.interrupt();
    const interrupted = await training.done;
    expect(interrupted.status).to.equal('error');
    // tslab ends the interrupted cell's await with this error (on stderr).
    expect(interrupted.text).to.contain('Error: Interrupted asynchronously');
    await waitFor(() => clusterProcesses(clusterId!).length === 0, {
      timeoutMs: 60_000,
      what: () => `processes of the interrupted cluster left:\n${describeProcesses(clusterProcesses(clusterId!))}`,
    });
    const state = await kernel.run('console.log(`state ${first.state}: ${first.error?.message}`);').done;
    expect(state.text).to.match(/^state failed: .*interrupted \(SIGINT\)/m);

    const next = await kernel.run(`
      const second = await TFCluster.run({
        module: ${JSON.stringify(path.join(FIXTURES, 'report-context.js'))},
        numExecutors: 2,
        via: { local: {} },
        stopOnInterrupt: true,
        reservationTimeout: 300,
        args: ['after-the-interrupt'],
      });
      const results = await second.shutdown({ timeout: 300 });
      console.log(\`second \${second.clusterId} \${second.state}: \${results.size} results, \${JSON.stringify([...results.values()].map((r: any) => r.args))}\`);
    `).done;
    expect(next.error).to.equal(undefined);
    const [, secondId] = /second (\S+) finished: 2 results, \[\["after-the-interrupt"\],\["after-the-interrupt"\]\]/.exec(next.text) ?? [];
    expect(secondId, next.text.slice(-3000)).to.be.a('string');
    expect(clusterProcesses(secondId)).to.deep.equal([]);
  });
});
