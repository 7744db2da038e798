/**
 * Every listener lets nobody in without the cluster secret and holds nothing for a stranger:
 * the driver's control server, a trainer's data port (InputMode.SPARK) and its cluster-server
 * port (collectives / parameter servers). For each: a peer without the secret is refused and
 * its connection closed, an idle pre-authentication connection is closed within the pre-auth
 * bound (the test's timeout is that bound plus a margin), too many of them are refused at once,
 * an oversized pre-auth frame closes the connection — and the secret is in no error or log line.
 */
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import { ControlServer } from '../../lib/driver/control-server';
import { NodeControl } from '../../lib/node/control-client';
import { bootstrapRequest, openBootstrapAnswer, RESPONSE_MAC_HEADER, signRequest, verifyResponse } from '../../lib/protocol/control-auth';
import { encodeHello, dialOnce } from '../../lib/node/distributed/auth';
import { Channel, encodeHeader, FrameType } from '../../lib/node/distributed/wire';
import { FeedServer, feedProof } from '../../lib/node/feed-server';
import { guardListener, PREAUTH_MAX_PENDING, preauthTimeoutMs } from '../../lib/platform/preauth';
import type { JobSpec } from '../../lib/protocol/launcher';
import { fakeCluster, FakeCluster } from '../fixtures/distributed/fake-cluster';
import { rejection } from '../support/rejection';

// A short deadline through the documented variable (the listeners read it, trainers inherit it), so
// each idle-connection case costs a second instead of the default five.
const PREAUTH_MS = 1000;
const BOUND_MS = PREAUTH_MS + 3000;
function withShortPreauthDeadline(): void {
  let saved: string | undefined;
  before(() => {
    saved = process.env.TFOS_PREAUTH_TIMEOUT_MS;
    process.env.TFOS_PREAUTH_TIMEOUT_MS = String(PREAUTH_MS);
    expect(preauthTimeoutMs()).to.equal(PREAUTH_MS);
  });
  after(() => {
    if (saved === undefined) delete process.env.TFOS_PREAUTH_TIMEOUT_MS;
    else process.env.TFOS_PREAUTH_TIMEOUT_MS = saved;
  });
}
const SECRET = crypto.randomBytes(32).toString('hex');

/** Connects and resolves once the server has closed the connection; collects what it sent. */
function connectUntilClosed(port: number, send?: (s: net.Socket) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => send?.(s));
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.setTimeout(BOUND_MS + 5000, () => reject(new Error('the server kept the connection open')));
  });
}

function openConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => undefined);
  });
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
}

describe('pre-authentication guard (lib/platform/preauth)', function () {
  this.timeout(BOUND_MS * 2);
  withShortPreauthDeadline();
  it('closes a connection that never authenticates, and refuses connections beyond the cap at once', async () => {
    const server = net.createServer();
    const rejected: string[] = [];
    guardListener(server, { timeoutMs: 500, maxPending: 2, onReject: (why) => rejected.push(why) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const held = [await openConnection(port), await openConnection(port)];
      const third = await openConnection(port);
      await closed(third);
      await Promise.all(held.map(closed));
      expect(rejected.filter((r) => /already waiting/.test(r))).to.have.length(1);
      expect(rejected.filter((r) => /no proof of the cluster secret within 500 ms/.test(r))).to.have.length(2);
    } finally {
      server.close();
    }
  });
});

describe('control server (driver) refuses strangers', function () {
  this.timeout(BOUND_MS * 2);
  withShortPreauthDeadline();
  let server: ControlServer;
  let port: number;
  const failures: string[] = [];
  beforeEach(async () => {
    failures.length = 0;
    server = new ControlServer(SECRET, () => ({ protocol: 1 }) as JobSpec);
    server.on('auth-failure', (remote: string, what: string) => failures.push(`${remote} ${what}`));
    await server.listen('127.0.0.1');
    port = Number(new URL(server.url()).port);
  });
  afterEach(() => server.close());

  it('answers 401 to a request without the secret, closes the connection and logs it without secrets', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request(
        {
          port,
          host: '127.0.0.1',
          path: '/v1/launcher/job',
          headers: { authorization: 'Bearer wrong' },
          agent: new http.Agent({ keepAlive: true }),
        },
        resolve,
      );
      req.on('error', reject);
      req.end();
    });
    expect(res.statusCode).to.equal(401);
    expect(res.headers.connection).to.equal('close');
    res.resume();
    await closed(res.socket);
    expect(failures.join('\n')).to.match(/GET \/v1\/launcher\/job: no proof of the cluster secret/);
    expect(failures.join('\n')).not.to.include(SECRET);
  });

  /** One raw HTTP exchange (a fresh connection each time). */
  function request(
    pathAndQuery: string,
    headers: Record<string, string>,
    method = 'GET',
    body?: string,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', path: pathAndQuery, method, headers, agent: false }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('answers a signed request with its own proof, and refuses the same request replayed', async () => {
    const { header, nonce } = signRequest(SECRET, 'GET', '/v1/launcher/job');
    const first = await request('/v1/launcher/job', { authorization: header });
    expect(first.status).to.equal(200);
    expect(verifyResponse(SECRET, nonce, 200, first.body, first.headers[RESPONSE_MAC_HEADER] as string)).to.equal(true);
    const replayed = await request('/v1/launcher/job', { authorization: header });
    expect(replayed.status).to.equal(401);
    expect(failures.join('\n')).to.match(/GET \/v1\/launcher\/job: it is a replay/);
  });

  it('refuses a request whose body is not the one it signed', async () => {
    const { header } = signRequest(SECRET, 'POST', '/v1/launcher/event', '{"type":"stopped"}');
    const res = await request(
      '/v1/launcher/event',
      { authorization: header, 'content-type': 'application/json' },
      'POST',
      '{"type":"failed","error":"forged"}',
    );
    expect(res.status).to.equal(400);
    expect(res.body).to.match(/not the one the request signed/);
  });

  it('an impostor at the driver address cannot pass for the driver to a trainer', async () => {
    const impostor = new ControlServer('not-the-secret', () => ({}) as JobSpec);
    await impostor.listen('127.0.0.1');
    try {
      const err = await rejection(NodeControl.connect(impostor.url(), SECRET));
      // The impostor refuses the trainer's proof; were it to accept, its answer could not prove the secret.
      expect(err.message).to.match(/refused this node: HTTP 401|could not prove this cluster's secret/);
    } finally {
      await impostor.close();
    }
  });

  it('refuses a WebSocket upgrade without the secret', async () => {
    const answer = await connectUntilClosed(port, (s) =>
      s.write(
        'GET /v1/nodes HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      ),
    );
    expect(answer.toString()).to.match(/^HTTP\/1\.1 401/);
  });

  it('TFOS_PREAUTH_TIMEOUT_MS outside 100–60000 ms is refused, naming the variable and the value', () => {
    expect(() => preauthTimeoutMs({ TFOS_PREAUTH_TIMEOUT_MS: '5s' })).to.throw(/TFOS_PREAUTH_TIMEOUT_MS .* got '5s'/);
    expect(() => preauthTimeoutMs({ TFOS_PREAUTH_TIMEOUT_MS: '10' })).to.throw(/from 100 to 60000/);
    expect(preauthTimeoutMs({})).to.equal(5000);
  });

  it('closes an idle connection that never sends a request', async () => {
    await connectUntilClosed(port);
    expect(failures.join('\n')).to.match(/no proof of the cluster secret within/);
  });

  it('closes a connection sending oversized headers before authenticating', async () => {
    const answer = await connectUntilClosed(port, (s) => s.write(`GET / HTTP/1.1\r\nX-Junk: ${'a'.repeat(64 * 1024)}\r\n\r\n`));
    expect(answer.toString()).to.match(/^HTTP\/1\.1 431|^$/);
  });

  it(`refuses connections beyond ${PREAUTH_MAX_PENDING} waiting to authenticate`, async () => {
    const held = await Promise.all(Array.from({ length: PREAUTH_MAX_PENDING }, () => openConnection(port)));
    const extra = await openConnection(port);
    await closed(extra);
    expect(failures.join('\n')).to.match(/already waiting to authenticate/);
    for (const s of held) s.destroy();
  });
});

describe('bootstrap token (control server)', function () {
  this.timeout(20_000);
  it('yields the secret once; a second valid use is reported as a stolen token; a wrong proof is refused', async () => {
    const token = crypto.randomBytes(32).toString('hex');
    const server = new ControlServer(SECRET, () => ({}) as JobSpec, token);
    const reuse: string[] = [];
    const failures: string[] = [];
    server.on('token-reuse', (remote: string) => reuse.push(remote));
    server.on('auth-failure', (_r: string, what: string) => failures.push(what));
    await server.listen('127.0.0.1');
    const exchange = async (t: string) => {
      const req = bootstrapRequest(t);
      const res = await fetch(`${server.url()}/v1/launcher/bootstrap`, {
        method: 'POST',
        body: JSON.stringify(req),
        headers: { 'content-type': 'application/json' },
      });
      return { status: res.status, req, body: (await res.json()) as { proof: string; sealed: string } };
    };
    try {
      const wrong = await exchange('not-the-token');
      expect(wrong.status).to.equal(401);
      const first = await exchange(token);
      expect(first.status).to.equal(200);
      expect(JSON.stringify(first.body)).not.to.include(SECRET);
      expect(openBootstrapAnswer(token, first.req, first.body)).to.equal(SECRET);
      const second = await exchange(token);
      expect(second.status).to.equal(401);
      expect(reuse).to.have.length(1);
      expect(failures.join('\n'))
        .to.match(/no valid proof of the bootstrap token/)
        .and.match(/already used/);
      expect(failures.join('\n')).not.to.include(token);
    } finally {
      await server.close();
    }
  });
});

describe("trainer's data port (feed server) refuses strangers and proves itself", function () {
  this.timeout(BOUND_MS * 2);
  withShortPreauthDeadline();
  let feeds: FeedServer;
  let port: number;
  const errors: string[] = [];
  beforeEach(async () => {
    errors.length = 0;
    feeds = new FeedServer(SECRET, (e) => errors.push(e.message));
    port = await feeds.listen('127.0.0.1');
  });
  afterEach(() => feeds.close());

  /** Plays a feeding task: header signed with `secret` (or the proof of `signedHeader`). */
  function hello(
    secret: string,
    header: object,
    signedHeader?: object,
    lengthOverride?: number,
  ): Promise<{ serverProofOk: boolean; bytes: number }> {
    return new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      const raw = Buffer.from(JSON.stringify(header));
      const signed = Buffer.from(JSON.stringify(signedHeader ?? header));
      const nonceC = crypto.randomBytes(16);
      let got = Buffer.alloc(0);
      let nonceS: Buffer | undefined;
      s.on('data', (c) => {
        got = Buffer.concat([got, c]);
        if (!nonceS && got.length >= 16) {
          nonceS = got.subarray(0, 16);
          const len = Buffer.alloc(4);
          len.writeUInt32BE(lengthOverride ?? raw.length);
          s.write(Buffer.concat([nonceC, len, raw, feedProof(secret, 'client', nonceS, nonceC, signed)]));
        }
      });
      s.on('error', () => undefined);
      const done = () => {
        const answer = got.subarray(16, 48);
        const serverProofOk =
          nonceS !== undefined && answer.length === 32 && answer.equals(feedProof(SECRET, 'server', nonceS, nonceC, raw));
        resolve({ serverProofOk, bytes: Math.max(0, got.length - 16) });
        s.destroy();
      };
      // The server either answers its proof (then waits for data) or closes.
      s.on('data', () => got.length >= 48 && done());
      s.on('close', done);
    });
  }

  const header = { feedId: 'f1', kind: 'train', epoch: 0, worker: 0 };

  it('answers a feeder holding the secret with its own proof over the nonces and the header', async () => {
    const r = await hello(SECRET, header);
    expect(r.serverProofOk).to.equal(true);
    expect(errors).to.deep.equal([]);
  });

  it('refuses a feeder without the secret and says nothing back', async () => {
    const r = await hello('not-the-secret', header);
    expect(r.bytes).to.equal(0);
    expect(errors.join('\n')).to.match(/failed authentication/);
    expect(errors.join('\n')).not.to.include(SECRET);
  });

  it('refuses a header that differs from the one the proof covers (altered or replayed)', async () => {
    const r = await hello(SECRET, { ...header, worker: 1 }, header);
    expect(r.bytes).to.equal(0);
    expect(errors.join('\n')).to.match(/failed authentication/);
  });

  it('refuses an oversized header before reading it', async () => {
    const r = await hello(SECRET, header, undefined, 10 << 20);
    expect(r.bytes).to.equal(0);
    expect(errors.join('\n')).to.match(/header of 10485760 bytes/);
  });

  it('closes an idle connection that never authenticates', async () => {
    await connectUntilClosed(port);
    expect(errors.join('\n')).to.match(/no proof of the cluster secret within/);
  });
});

describe("trainer's cluster-server port refuses strangers without breaking the group", function () {
  this.timeout(60_000);
  withShortPreauthDeadline();
  let cluster: FakeCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('ignores a connection claiming to be worker:0 that fails authentication; training goes on', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    const logged: string[] = [];
    const { workers } = await cluster.start({ timeoutMs: 10_000, log: (l) => logged.push(l) });
    const chiefAddr = cluster.spec.chief![0];
    const [host, port] = [chiefAddr.split(':')[0], Number(chiefAddr.split(':')[1])];
    // A stranger dials the chief as worker:0 with the wrong secret, before the real worker does.
    const err = await rejection(
      dialOnce(
        {
          secret: 'not-the-secret',
          channel: Channel.COLLECTIVE,
          self: { job: 'worker', index: 0 },
          target: { job: 'chief', index: 0, addr: chiefAddr, rank: 0 },
          stepTimeoutMs: 2000,
        },
        () => undefined,
      ),
    );
    expect(err.name).to.equal('AuthError');
    // And one that sends a forged proof.
    await connectUntilClosed(port, (s) => {
      const h = encodeHello(Channel.COLLECTIVE, { job: 'worker', index: 0 }, { job: 'chief', index: 0 });
      s.write(Buffer.concat([encodeHeader(FrameType.HELLO, {}, h.length), h]));
      setTimeout(() => {
        const forged = crypto.randomBytes(32);
        s.write(Buffer.concat([encodeHeader(FrameType.AUTH, {}, forged.length), forged]));
      }, 100);
    });
    const out = await Promise.all(workers.map((w) => w.allReduce(Float32Array.of(1, 2), 'sum')));
    for (const o of out) expect([...o]).to.deep.equal([2, 4]);
    expect(logged.join('\n')).to.match(/ignored a connection from 127\.0\.0\.1:\d+ claiming to be worker:0/);
    expect(logged.join('\n')).not.to.include(cluster.secret);
    void host;
  });

  it('closes an idle connection and one with an oversized pre-auth frame', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    await cluster.start({ timeoutMs: 10_000, log: () => undefined });
    const port = Number(cluster.spec.chief![0].split(':')[1]);
    await connectUntilClosed(port);
    await connectUntilClosed(port, (s) => s.write(encodeHeader(FrameType.HELLO, {}, 1 << 20)));
  });

  it('closes an idle connection that arrives before startClusterServer', async () => {
    cluster = await fakeCluster({ numWorkers: 2 });
    await connectUntilClosed(Number(cluster.spec.chief![0].split(':')[1]));
  });
});
