/**
 * The control channel's authentication (lib/protocol/control-auth.ts), on its own and against the
 * Python launcher's implementation of the same strings: requests verify only unaltered and once,
 * responses only from a holder of the secret, WebSocket messages only in order, and the bootstrap
 * token yields the secret without crossing the wire.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import {
  bootstrapAnswer,
  bootstrapProofOk,
  bootstrapRequest,
  MAX_SKEW_MS,
  openBootstrapAnswer,
  parseRequestAuth,
  ReplayGuard,
  responseMac,
  signRequest,
  verifyRequest,
  verifyResponse,
  WsSealer,
} from '../../lib/protocol/control-auth';

const LAUNCHER = path.resolve(__dirname, '../../../spark-jobs/tfos_launcher.py');
const SECRET = crypto.randomBytes(32).toString('hex');

/** Runs `code` with the launcher module loaded as `L`; returns its JSON output. */
function python(code: string, input: unknown): unknown {
  const prog = `import importlib.util, json, sys\nspec = importlib.util.spec_from_file_location('L', ${JSON.stringify(LAUNCHER)})\nL = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(L)\ninp = json.load(sys.stdin)\n${code}`;
  return JSON.parse(execFileSync('python3', ['-c', prog], { input: JSON.stringify(input) }).toString());
}

describe('control channel authentication', () => {
  it('a signed request verifies once; a changed method, path or secret does not; a replay is refused', () => {
    const { header } = signRequest(SECRET, 'GET', '/v1/launcher/command?wait=2');
    const a = parseRequestAuth(header)!;
    expect(verifyRequest(SECRET, 'GET', '/v1/launcher/command?wait=2', a)).to.equal(true);
    expect(verifyRequest(SECRET, 'POST', '/v1/launcher/command?wait=2', a)).to.equal(false);
    expect(verifyRequest(SECRET, 'GET', '/v1/launcher/command?wait=30', a)).to.equal(false);
    expect(verifyRequest('other', 'GET', '/v1/launcher/command?wait=2', a)).to.equal(false);
    const guard = new ReplayGuard();
    expect(guard.check(a)).to.equal(undefined);
    expect(guard.check(a)).to.match(/replay/);
    expect(guard.check({ ...a, nonce: 'f'.repeat(32), ts: Date.now() - MAX_SKEW_MS - 1000 })).to.match(/off this driver's clock/);
  });

  it('malformed headers are not parsed (no partial trust)', () => {
    expect(parseRequestAuth('Bearer abc')).to.equal(undefined);
    expect(parseRequestAuth('TFOS-HMAC ts=1,nonce=zz,body=x,mac=y')).to.equal(undefined);
  });

  it('responses verify only with the secret and the request nonce', () => {
    const mac = responseMac(SECRET, 'a'.repeat(32), 200, '{"type":"shutdown"}');
    expect(verifyResponse(SECRET, 'a'.repeat(32), 200, '{"type":"shutdown"}', mac)).to.equal(true);
    expect(verifyResponse(SECRET, 'b'.repeat(32), 200, '{"type":"shutdown"}', mac)).to.equal(false);
    expect(verifyResponse(SECRET, 'a'.repeat(32), 200, '{"type":"feed"}', mac)).to.equal(false);
    expect(verifyResponse('other', 'a'.repeat(32), 200, '{"type":"shutdown"}', mac)).to.equal(false);
  });

  it('WebSocket messages open only in order, unaltered, from the other side', () => {
    const driver = new WsSealer(SECRET, 'c'.repeat(32), 'driver');
    const node = new WsSealer(SECRET, 'c'.repeat(32), 'node');
    const m0 = driver.seal({ type: 'cluster', ctx: { module: '/a.js' } });
    const m1 = driver.seal({ type: 'shutdown', reason: 'x' });
    expect(() => node.open(m1)).to.throw(/out of sequence/);
    expect(node.open(m0)).to.deep.equal({ type: 'cluster', ctx: { module: '/a.js' } });
    expect(() => node.open(m0)).to.throw(/out of sequence/); // replayed
    expect(() => node.open(m1.replace('"x"', '"y"'))).to.throw(/failed authentication/);
    expect(node.open(m1)).to.deep.equal({ type: 'shutdown', reason: 'x' });
    // A node cannot pass its own message off as the driver's.
    expect(() =>
      new WsSealer(SECRET, 'c'.repeat(32), 'node').open(new WsSealer(SECRET, 'c'.repeat(32), 'node').seal({ type: 'x' })),
    ).to.throw(/failed authentication/);
  });

  it('the bootstrap token yields the secret once, and only to its holder', () => {
    const token = crypto.randomBytes(32).toString('hex');
    const req = bootstrapRequest(token);
    expect(bootstrapProofOk(token, req)).to.equal(true);
    expect(bootstrapProofOk('other', req)).to.equal(false);
    const ans = bootstrapAnswer(token, req, SECRET);
    expect(ans.sealed).not.to.include(SECRET);
    expect(openBootstrapAnswer(token, req, ans)).to.equal(SECRET);
    expect(() => openBootstrapAnswer(token, req, { ...ans, proof: '0'.repeat(64) })).to.throw(/could not prove/);
  });

  it('the Python launcher speaks the same: request, response and bootstrap', () => {
    const pyReq = python(
      `h, n = L.sign_request(inp['s'], 'POST', '/v1/launcher/event', b'{"type":"stopped"}')\nprint(json.dumps({'h': h, 'n': n}))`,
      { s: SECRET },
    ) as { h: string; n: string };
    const a = parseRequestAuth(pyReq.h)!;
    expect(verifyRequest(SECRET, 'POST', '/v1/launcher/event', a)).to.equal(true);
    expect(a.body).to.equal(crypto.createHash('sha256').update('{"type":"stopped"}').digest('hex'));
    const ok = python(`print(json.dumps(L.response_ok(inp['s'], inp['n'], 200, inp['b'].encode(), inp['m'])))`, {
      s: SECRET,
      n: pyReq.n,
      b: '{"x":1}',
      m: responseMac(SECRET, pyReq.n, 200, '{"x":1}'),
    });
    expect(ok).to.equal(true);
    const token = crypto.randomBytes(32).toString('hex');
    const req = python(`print(json.dumps(L.bootstrap_request(inp['t'])))`, { t: token }) as { ts: number; nonce: string; proof: string };
    expect(bootstrapProofOk(token, req)).to.equal(true);
    const opened = python(`print(json.dumps(L.open_bootstrap_answer(inp['t'], inp['r'], inp['a'])))`, {
      t: token,
      r: req,
      a: bootstrapAnswer(token, req, SECRET),
    });
    expect(opened).to.equal(SECRET);
  });
});
