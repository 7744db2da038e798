/**
 * The sessions the Livy route creates clean up after themselves: Livy deletes one whose driver
 * stopped asking about it (a session heartbeat), its Spark driver gets as long to call back as the
 * route waits for it, and one that dies while starting is deleted at once. Against a stub Livy.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { LivyRoute, SESSION_HEARTBEAT_SEC, SESSION_START_TIMEOUT_MS } from '../../lib/driver/routes/livy-route';
import { rejection } from '../support/rejection';

describe('Livy route: the sessions it creates', () => {
  let server: http.Server;
  let url: string;
  const requests: Array<{ method: string; url: string; body: unknown }> = [];
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-livy-session-'));
    fs.writeFileSync(path.join(dir, 'token'), 'one-time\n', { mode: 0o600 });
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests.push({ method: req.method!, url: req.url!, body: body ? JSON.parse(body) : undefined });
        res.setHeader('content-type', 'application/json');
        if (req.method === 'POST' && req.url === '/sessions') return res.end(JSON.stringify({ id: 7, state: 'starting', kind: 'pyspark' }));
        // The session's Spark driver never came up.
        if (req.method === 'GET' && req.url === '/sessions/7/state') return res.end(JSON.stringify({ id: 7, state: 'dead' }));
        if (req.method === 'GET' && req.url?.startsWith('/sessions/7/log'))
          return res.end(JSON.stringify({ id: 7, from: 0, total: 1, log: ['no driver'] }));
        if (req.method === 'DELETE' && req.url === '/sessions/7') return res.end(JSON.stringify({ msg: 'deleted' }));
        res.statusCode = 404;
        res.end(JSON.stringify({ msg: 'not found' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('asks for a heartbeat and a driver call-back deadline as long as its own wait, and deletes a session that died starting', async () => {
    const route = new LivyRoute({ url, mode: 'session' });
    const err = await rejection(
      route.submit({
        appName: 'tfjs-on-spark t.js (abc)',
        clusterSize: 2,
        controlUrl: 'http://127.0.0.1:1',
        tokenFile: path.join(dir, 'token'),
        logFile: path.join(dir, 'log'),
        conf: {},
      }),
    );
    expect(err.message).to.match(/session 7.*dead/i);
    const created = requests.find((r) => r.method === 'POST' && r.url === '/sessions')!.body as {
      heartbeatTimeoutInSecond: number;
      conf: Record<string, string>;
    };
    expect(created.heartbeatTimeoutInSecond).to.equal(SESSION_HEARTBEAT_SEC);
    expect(created.conf['livy.rsc.server.connect.timeout']).to.equal(`${SESSION_START_TIMEOUT_MS / 1000}s`);
    expect(requests.some((r) => r.method === 'DELETE' && r.url === '/sessions/7')).to.equal(true);
  });
});
