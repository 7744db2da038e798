/**
 * The command line as a user types it: `tfos run` (roles from --no-chief / --eval-node, trainer
 * output labelled by role, a failing node's error and a non-zero exit), `tfos pack` (what goes
 * into the archive, what stays out), and a short `npm start` (the README's main job).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../../..');
const TFOS = path.join(REPO, 'bin', 'tfos.js');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'modules');

interface Done {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (the test's timeout bounds it), collecting its output. */
function runCommand(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Done> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const tfos = (...args: string[]) => runCommand(process.execPath, [TFOS, ...args]);

describe('tfos run', function () {
  this.timeout(300_000);

  it('--no-chief --eval-node: workers and an evaluator, each line labelled by role; exit 0', async () => {
    const r = await tfos(
      'run',
      path.join(FIXTURES, 'report-context.js'),
      '--via',
      'local',
      '--cluster-size',
      '3',
      '--no-chief',
      '--eval-node',
      '--',
      'a',
      'b',
    );
    const out = r.stdout + r.stderr;
    expect(r.code, out).to.equal(0);
    // Labels are padded to the longest one.
    expect(out).to.match(/^worker:0 *\| hello from worker:0 args=\["a","b"\]$/m);
    expect(out).to.match(/^worker:1 *\| hello from worker:1 args=\["a","b"\]$/m);
    expect(out).to.match(/^evaluator:0 *\| hello from evaluator:0 args=\["a","b"\]$/m);
    expect(out).not.to.match(/^chief:/m);
  });

  it("a throwing node: exit 1 with that node's error, naming it", async () => {
    const r = await tfos('run', path.join(FIXTURES, 'throws.js'), '--via', 'local', '--cluster-size', '2');
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stderr).to.contain('boom-from-the-chief: bad learning rate').and.contain('chief:0');
  });

  it('names a module that does not exist, starting nothing', async () => {
    const r = await tfos('run', '/nope/train.js', '--via', 'local');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('/nope/train.js').and.contain('does not exist');
  });
});

describe('tfos pack', function () {
  this.timeout(120_000);
  let project: string;
  let out: string;
  before(() => {
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-pack-cli-'));
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-pack-out-'));
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'packme', version: '1.0.0' }));
    fs.mkdirSync(path.join(project, 'src'));
    fs.writeFileSync(path.join(project, 'src', 'train.js'), 'module.exports = async () => 1;\n');
    fs.writeFileSync(path.join(project, '.env'), 'TOKEN=do-not-ship\n');
    // What `npm install tfjs-on-spark` leaves in the project (pack checks the trainer entry is there).
    const pkg = path.join(project, 'node_modules', 'tfjs-on-spark');
    fs.mkdirSync(path.join(pkg, 'dist', 'lib', 'node'), { recursive: true });
    fs.writeFileSync(
      path.join(pkg, 'package.json'),
      JSON.stringify({ name: 'tfjs-on-spark', version: '0.0.0', main: 'dist/lib/index.js' }),
    );
    fs.writeFileSync(path.join(pkg, 'dist', 'lib', 'node', 'trainer-main.js'), '// stand-in\n');
  });
  after(() => {
    for (const d of [project, out]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('archives the project, leaving .env files out, and says how to use the archive', async () => {
    const archive = path.join(out, 'packme.tgz');
    const r = await tfos('pack', '--project', project, '--out', archive);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain(archive).and.contain(`--archive ${archive} --project ${project}`);
    const list = await runCommand('tar', ['-tzf', archive]);
    const names = list.stdout
      .split('\n')
      .map((n) => n.replace(/^\.\//, ''))
      .filter(Boolean);
    expect(names).to.include.members(['package.json', 'src/train.js', 'node_modules/tfjs-on-spark/dist/lib/node/trainer-main.js']);
    expect(
      names.filter((n) => /(^|\/)\.env/.test(n)),
      'credentials shipped',
    ).to.deep.equal([]);
  });

  it('refuses a directory that is not a Node project, naming it', async () => {
    const r = await tfos('pack', '--project', out, '--out', path.join(out, 'x.tgz'));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`${out} is not a Node project`);
  });
});

describe('npm start (the main job, cut short)', function () {
  // Installs nothing new after npm test's own bootstrap; the first run ingests CIFAR-10 into the cache.
  this.timeout(900_000);
  let runDir: string;
  before(() => (runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-npm-start-'))));
  after(() => runDir && fs.rmSync(runDir, { recursive: true, force: true }));

  it('trains the CIFAR-10 example for 2 steps on the embedded local Spark and writes its model', async () => {
    const r = await runCommand('npm', ['start', '--', '--max-steps', '2', '--eval-every', '0', '--test-rows', '256'], {
      env: { TFOS_RUN_DIR: runDir },
    });
    expect(r.code, `${r.stdout}\n${r.stderr}`.slice(-4000)).to.equal(0);
    expect(fs.readdirSync(path.join(runDir, 'model')).length, 'files in the model directory').to.be.above(0);
  });
});
