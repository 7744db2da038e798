/**
 * `npm test` fails closed: the check scripts/test.sh runs before any suite
 * (`node dist/test/support/stack.js`) stops the run with a message naming the service when the
 * stack is broken, and says how to start one when there is none. The broken stack here is the
 * shared one's Spark and HDFS with Livy's address pointing at a port nobody listens on.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootId, processStartTicks } from '../../lib/platform/process-group';
import { freePort } from '../../lib/stack/ports';
import { readStackStatus } from '../support/stack';

const CHECK = path.resolve(__dirname, '../support/stack.js');

/** Runs the check with TFOS_HOME = home; returns its exit status and output. */
function check(home: string): { status: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, TFOS_HOME: home };
  for (const k of Object.keys(env)) if (k.startsWith('TFOS_TEST_')) delete env[k];
  const r = spawnSync(process.execPath, [CHECK], { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('npm test refuses a missing or broken stack, naming the service', function () {
  this.timeout(120_000);
  let home: string;
  beforeEach(() => (home = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-broken-home-'))));
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  it('prints the TFOS_TEST_* exports for the healthy shared stack', () => {
    const ok = check(process.env.TFOS_HOME ?? path.join(os.homedir(), '.cache', 'tfjs-on-spark'));
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(/^export TFOS_TEST_SPARK_MASTER='spark:\/\/[^']+'$/m);
    expect(ok.stdout).to.match(/^export TFOS_TEST_LIVY_SESSIONS=[01]$/m);
  });

  it('with no stack: exit 1, saying how to start one', () => {
    const r = check(home);
    expect(r.status).to.equal(1);
    expect(r.stderr.trim()).to.equal(
      "npm test: the local stack is not running; start it with 'node bin/tfos.js stack up' (npm test does this when no stack runs)",
    );
  });

  it('with Livy down: exit 1, naming Livy and its address', async () => {
    const healthy = readStackStatus();
    const status = JSON.parse(
      spawnSync(process.execPath, [path.resolve(__dirname, '../../../bin/tfos.js'), 'stack', 'status', '--json'], { encoding: 'utf8' })
        .stdout,
    ) as {
      spark: { ui: string };
    };
    const deadLivy = `http://127.0.0.1:${await freePort()}`;
    fs.mkdirSync(path.join(home, 'stack'), { recursive: true });
    fs.writeFileSync(
      path.join(home, 'stack', 'state.json'),
      JSON.stringify({
        version: 1,
        startedAt: new Date().toISOString(),
        workers: 1,
        ports: {},
        // A live process stands in for the stack's services, so the record names a running stack
        // (a record naming nothing alive would be no stack at all).
        bootId: bootId(),
        services: [{ name: 'stand-in', pid: process.pid, startTicks: processStartTicks(process.pid) }],
        endpoints: {
          sparkMaster: healthy.sparkMaster,
          sparkUi: status.spark.ui,
          defaultFS: healthy.defaultFS,
          webhdfs: healthy.webhdfs,
          hdfsExternal: false,
          livy: deadLivy,
          livyExternal: false,
        },
      }),
    );
    const r = check(home);
    expect(r.status).to.equal(1);
    expect(r.stdout).to.equal('');
    expect(r.stderr.trim()).to.equal(
      `npm test: the local stack's livy at ${deadLivy} is not healthy; its log is under ${path.join(home, 'stack', 'logs')}`,
    );
  });
});
