/**
 * spark-submit by hand, no Node process of the user's: `tfos submit-command` prints the line, bash
 * runs it, and the bundled launcher starts the Node driver side itself on the Spark driver host —
 * the same run as `tfos run`: trainers' output in the driver log, the failing node's error and a
 * non-zero exit. Against the stack's standalone master, in client and in cluster deploy mode (the
 * driver side on a worker; its log is the worker's driver log).
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { formatSubmitLine, submitLine } from '../../lib/cli/submit-command';
import { runCaptured } from '../support/run-captured';
import { readStackStatus, requireStack } from '../support/stack';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/modules');

function trainersOf(modulePath: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `trainer-main.js`])
      .toString()
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter((pid) => {
        try {
          return execFileSync('cat', [`/proc/${pid}/environ`])
            .toString()
            .includes(path.basename(modulePath));
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

async function printedLine(args: string[]): Promise<string> {
  return formatSubmitLine(await submitLine(args));
}

interface MasterJson {
  workers: Array<{ id: string; webuiaddress: string }>;
  completeddrivers: Array<{ id: string; state: string; worker: string }>;
}

/**
 * In cluster deploy mode the driver runs on a worker: its log (stdout) is read from that worker's
 * web UI, found through the master's status page — as a user finds it.
 */
async function driverLog(masterUi: string, clientOutput: string): Promise<{ state: string; log: string }> {
  const id = /submitted as (driver-[\d-]+)/.exec(clientOutput)?.[1];
  expect(id, `no driver id in spark-submit's output:\n${clientOutput.slice(-3000)}`).to.be.a('string');
  const master = (await (await fetch(`${masterUi}/json/`)).json()) as MasterJson;
  const driver = master.completeddrivers.find((d) => d.id === id);
  expect(driver, `${id} is not among the master's completed drivers`).to.not.equal(undefined);
  const worker = master.workers.find((w) => w.id === driver!.worker)!;
  const res = await fetch(`${worker.webuiaddress}/log/?driverId=${id}&logType=stdout&offset=0&byteLength=10000000`);
  return { state: driver!.state, log: await res.text() };
}

describe('spark-submit typed by hand (the line `tfos submit-command` prints)', function () {
  // Each case starts a Spark application and a cluster; the shared 2-core machine can be slow.
  this.timeout(15 * 60_000);
  let master: string;
  let masterUi: string;
  before(() => {
    const stack = requireStack();
    master = stack.sparkMaster;
    masterUi = stack.sparkUi ?? readStackStatus().sparkUi!;
  });

  it('runs 3 nodes with 1 ps like tfos run: roles, arguments and results in the driver log, exit 0', async () => {
    const line = await printedLine([
      path.join(FIXTURES, 'report-context.js'),
      '--master',
      master,
      '--cluster-size',
      '3',
      '--num-ps',
      '1',
      '--reservation-timeout',
      '300',
      '--',
      'lr=0.1',
      'two words',
    ]);
    expect(line).to.match(
      /spark-submit --master spark:\/\/\S+ .*tfos_launcher\.py \S+report-context\.js --cluster-size 3 --num-ps 1 --reservation-timeout 300 -- lr=0\.1 'two words'$/,
    );
    const { code, output } = await runCaptured(['bash', '-c', line], 600_000);
    expect(output).to.contain('[tfos-launcher] starting the Node driver');
    for (const role of ['ps:0', 'chief:0', 'worker:0']) {
      // The trainers' own output, labelled, streamed into the driver's log.
      expect(output).to.match(new RegExp(`${role}\\s*\\| hello from ${role} args=\\["lr=0.1","two words"\\]`));
      expect(output).to.contain(`[tfos] ${role} returned`);
    }
    expect(output).to.contain('[tfos] cluster finished');
    expect(code, output.slice(-3000)).to.equal(0);
  });

  it('a failing node: its message in the driver log, spark-submit exits non-zero, no trainer left', async () => {
    const module = path.join(FIXTURES, 'throws.js');
    const line = await printedLine([module, '--master', master, '--cluster-size', '3', '--num-ps', '1', '--reservation-timeout', '300']);
    const { code, output } = await runCaptured(['bash', '-c', line], 600_000);
    expect(output).to.match(
      /\[tfos\] FAILED: TF node chief:0 \(node \d, executor \S+ on [\d.]+\) failed: boom-from-the-chief: bad learning rate/,
    );
    expect(code).to.not.equal(0);
    const deadline = Date.now() + 15_000;
    while (trainersOf(module).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(trainersOf(module), 'trainers left behind').to.deep.equal([]);
  });

  describe('in cluster deploy mode (the driver side on a worker)', () => {
    it("runs 3 nodes with 1 ps: the trainers' output in the driver log on the worker, exit 0", async () => {
      const line = await printedLine([
        path.join(FIXTURES, 'report-context.js'),
        '--deploy-mode',
        'cluster',
        '--master',
        master,
        '--cluster-size',
        '3',
        '--num-ps',
        '1',
        '--reservation-timeout',
        '300',
        '--',
        'two words',
      ]);
      expect(line).to.match(
        /spark-submit --master spark:\/\/\S+ --deploy-mode cluster .*--class org\.apache\.spark\.deploy\.PythonRunner /,
      );
      const { code, output } = await runCaptured(['bash', '-c', line], 600_000);
      const { state, log } = await driverLog(masterUi, output);
      expect(log).to.contain('[tfos-launcher] starting the Node driver');
      for (const role of ['ps:0', 'chief:0', 'worker:0']) {
        expect(log).to.match(new RegExp(`${role}\\s*\\| hello from ${role} args=\\["two words"\\]`));
      }
      expect(log).to.contain('[tfos] cluster finished');
      expect(state).to.equal('FINISHED');
      expect(code, output.slice(-3000)).to.equal(0);
    });

    it('a failing node: its message in the driver log, the driver FAILED, the line exits non-zero, no trainer left', async () => {
      const module = path.join(FIXTURES, 'throws.js');
      const line = await printedLine([
        module,
        '--deploy-mode',
        'cluster',
        '--master',
        master,
        '--cluster-size',
        '3',
        '--num-ps',
        '1',
        '--reservation-timeout',
        '300',
      ]);
      const { code, output } = await runCaptured(['bash', '-c', line], 600_000);
      const { state, log } = await driverLog(masterUi, output);
      expect(log).to.match(
        /\[tfos\] FAILED: TF node chief:0 \(node \d, executor \S+ on [\d.]+\) failed: boom-from-the-chief: bad learning rate/,
      );
      expect(state).to.equal('FAILED');
      expect(output).to.contain('is FAILED, exiting spark-submit JVM');
      expect(code).to.not.equal(0);
      const deadline = Date.now() + 15_000;
      while (trainersOf(module).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      expect(trainersOf(module), 'trainers left behind').to.deep.equal([]);
    });
  });
});
