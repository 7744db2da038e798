/**
 * What a run leaves and accepts: a killed driver's private directory (with its secret) is removed
 * by the next run, a live one's never; a trainer speaking another protocol version is refused
 * with a reason both sides can show.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ControlServer } from '../../lib/driver/control-server';
import { createRunDir, RUN_DIR_PREFIX } from '../../lib/driver/run-dir';
import { NodeControl } from '../../lib/node/control-client';
import { PROTOCOL_VERSION, RegisterMessage } from '../../lib/protocol/control';
import type { JobSpec } from '../../lib/protocol/launcher';

describe('run directories of killed drivers', () => {
  let tmp: string;
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-rundirs-'))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('are removed by the next run; a live driver keeps its own, and the new one is 0700', () => {
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    const stale = path.join(tmp, `${RUN_DIR_PREFIX}${deadPid}-abc`);
    fs.mkdirSync(stale);
    fs.writeFileSync(path.join(stale, 'cluster.secret'), 'x', { mode: 0o600 });
    const live = path.join(tmp, `${RUN_DIR_PREFIX}${process.pid}-def`);
    fs.mkdirSync(live);
    const fresh = createRunDir(tmp);
    expect(fs.existsSync(stale)).to.equal(false);
    expect(fs.existsSync(live)).to.equal(true);
    expect(fs.statSync(fresh).mode & 0o777).to.equal(0o700);
  });
});

describe('register protocol version', function () {
  this.timeout(20_000);
  it('a trainer speaking another protocol is refused, and the refusal logged', async () => {
    const secret = crypto.randomBytes(32).toString('hex');
    const server = new ControlServer(secret, () => ({}) as JobSpec);
    const refused: string[] = [];
    let registered = false;
    server.on('auth-failure', (_remote: string, what: string) => refused.push(what));
    server.on('register', () => (registered = true));
    await server.listen('127.0.0.1');
    try {
      const control = await NodeControl.connect(server.url(), secret);
      const closed = new Promise<{ code: number; reason: string }>((r) =>
        control.once('close', (code: number, reason: string) => r({ code, reason })),
      );
      await control.send({
        type: 'register',
        protocol: PROTOCOL_VERSION + 98,
        nodeIndex: 0,
        attempt: 0,
        executorId: '0',
        host: '127.0.0.1',
        port: 1,
        dataPort: 2,
        pid: 1,
      } as RegisterMessage);
      const { code, reason } = await closed;
      expect(code).to.equal(1008);
      expect(reason).to.match(new RegExp(`protocol ${PROTOCOL_VERSION + 98} is not supported`));
      expect(registered).to.equal(false);
      expect(refused.join('\n')).to.match(/node 0 registered with protocol/);
    } finally {
      await server.close();
    }
  });
});

describe('a taken control port', () => {
  it('fails with an error naming host:port and the cause', async () => {
    const first = new ControlServer('s', () => ({}) as JobSpec);
    await first.listen('127.0.0.1');
    const port = Number(new URL(first.url()).port);
    const second = new ControlServer('s', () => ({}) as JobSpec);
    try {
      const err = await second.listen('127.0.0.1', port).then(
        () => new Error('listened on a taken port'),
        (e: Error) => e,
      );
      expect(err.message).to.equal(
        `the driver's control server cannot listen on 127.0.0.1:${port}: the port is taken by another process (EADDRINUSE); choose another controlPort / controlBindHost`,
      );
    } finally {
      await first.close();
      await second.close().catch(() => undefined);
    }
  });
});
