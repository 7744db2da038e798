/**
 * docker/compose.yaml runs one role of the stack per service. No Docker engine runs here, so this
 * checks what would break a `docker compose up`: every command is one the image has (`tfos` is on
 * its PATH, the sub-commands and options exist, the files it names are copied in), and every role
 * is started by the same code as `tfos stack up` (lib/stack/roles.ts builds the stack's own
 * ServiceSpec for it).
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROLES, Role, roleService } from '../../lib/stack/roles';
import { silentLogger } from '../../lib/platform/log';
import { resolveSpark } from '../../lib/platform/spark';
import { VERSIONS } from '../../lib/platform/versions';
import { skipBecause } from '../support/skip';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const yaml = require('js-yaml') as { load(text: string): unknown };

const ROOT = path.resolve(__dirname, '../../..');
interface Service {
  command: string[];
  build?: { dockerfile: string };
  image?: string;
  hostname?: string;
}
const compose = yaml.load(fs.readFileSync(path.join(ROOT, 'docker/compose.yaml'), 'utf8')) as { services: Record<string, Service> };
const ROLE_OPTIONS = ['--self', '--master', '--namenode', '--resourcemanager', '--worker-cores'];

/** `tfos ...` invocations of a service: its command, or each `&&` step of a `bash -c` script. */
function tfosCommands(cmd: string[]): string[][] {
  if (cmd[0] === 'tfos') return [cmd];
  expect(cmd.slice(0, 2), `command ${JSON.stringify(cmd)}`).to.deep.equal(['bash', '-c']);
  return cmd[2]
    .split('&&')
    .map((step) => step.trim().split(/\s+/))
    .filter((w) => w[0] === 'tfos');
}

describe('docker/compose.yaml: one stack role per service', () => {
  const services = Object.entries(compose.services);

  it('has the per-role services: namenode, datanodes, spark-master, workers (and a GPU worker), livy, driver', () => {
    const roles = services
      .map(([, s]) => s.command)
      .filter((c) => c[0] === 'tfos')
      .map((c) => c[3]);
    for (const role of ['namenode', 'datanode', 'spark-master', 'spark-worker', 'livy']) expect(roles).to.include(role);
    expect(roles.filter((r) => r === 'spark-worker').length).to.be.at.least(3);
    expect(compose.services).to.have.property('driver');
    expect(compose.services['spark-worker-gpu'].build?.dockerfile).to.equal('docker/Dockerfile.gpu');
  });

  it('names only commands the image has: tfos on PATH, known sub-commands and options, files copied in', () => {
    for (const dockerfile of ['docker/Dockerfile', 'docker/Dockerfile.gpu']) {
      const text = fs.readFileSync(path.join(ROOT, dockerfile), 'utf8');
      expect(text, dockerfile).to.match(/ln -s \/opt\/tfjs-on-spark\/bin\/tfos\.js \/usr\/local\/bin\/tfos/);
      for (const dir of ['bin', 'lib', 'spark-jobs', 'examples'])
        expect(text, dockerfile).to.match(new RegExp(`^COPY ${dir} ${dir}$`, 'm'));
    }
    expect(fs.existsSync(path.join(ROOT, 'bin/tfos.js'))).to.equal(true);
    const usage = fs.readFileSync(path.join(ROOT, 'lib/cli/main.ts'), 'utf8');
    for (const [name, service] of services) {
      for (const argv of tfosCommands(service.command)) {
        expect(usage, `${name}: tfos ${argv[1]}`).to.contain(`case '${argv[1]}':`);
        if (argv[1] === 'stack') {
          expect(argv[2], name).to.equal('role');
          expect(Object.keys(ROLES), name).to.include(argv[3]);
          for (const opt of argv.slice(4).filter((a) => a.startsWith('--'))) expect(ROLE_OPTIONS, `${name}: ${opt}`).to.include(opt);
          // A service's own name is what the others reach it by.
          expect(argv[argv.indexOf('--self') + 1], name).to.equal(service.hostname);
        }
        for (const file of argv.filter((a) => /^examples\//.test(a)))
          expect(fs.existsSync(path.join(ROOT, file)), `${name}: ${file}`).to.equal(true);
      }
    }
  });

  it("every role is the ServiceSpec `tfos stack up` starts, placed at the service's host name", async function () {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-roles-'));
    const real = path.join(os.homedir(), '.cache', 'tfjs-on-spark');
    const from = process.env.TFOS_HOME?.trim() || real;
    for (const name of fs.existsSync(from) ? fs.readdirSync(from) : [])
      if (name !== 'stack') fs.symlinkSync(path.join(from, name), path.join(home, name));
    const env = { ...process.env, TFOS_HOME: home };
    const provisioned =
      fs.existsSync(path.join(home, `hadoop-${VERSIONS.hadoop}`, '.tfos-complete')) &&
      (() => {
        try {
          resolveSpark(env);
          return true;
        } catch {
          return false;
        }
      })();
    if (!provisioned) {
      fs.rmSync(home, { recursive: true, force: true });
      return skipBecause(this, 'building the service specs needs provisioned Spark, Hadoop and Livy (tfos setup has not run)');
    }
    try {
      const checks: Array<[Role, RegExp]> = [
        ['spark-master', /org\.apache\.spark\.deploy\.master\.Master --host spark-master --port 7077/],
        ['spark-worker', /org\.apache\.spark\.deploy\.worker\.Worker --host w1 .* spark:\/\/spark-master:7077$/],
        ['datanode', /DataNode .*dfs\.datanode\.hostname=w1/],
      ];
      for (const [role, expected] of checks) {
        const spec = await roleService(
          role,
          { self: role === 'spark-master' ? 'spark-master' : 'w1', master: 'spark-master', namenode: 'namenode' },
          silentLogger,
          env,
        ).catch((err: Error) => err);
        if (spec instanceof Error) throw spec;
        expect(spec.name).to.equal(ROLES[role]);
        expect([spec.command, ...spec.args].join(' '), role).to.match(expected);
      }
      const nn = fs.readFileSync(path.join(home, 'stack', 'hadoop-conf', 'core-site.xml'), 'utf8');
      expect(nn).to.contain('hdfs://namenode:8020');
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
