/**
 * Authentication of the control channel, both ways, with the cluster secret (docs/security.md).
 * Only HMAC-SHA256 values cross the wire; the Python launcher implements the same strings.
 *
 * Requests (launcher and trainers → driver) carry
 *   Authorization: TFOS-HMAC ts=<unix ms>,nonce=<32 hex>,body=<sha256 hex of the body | UNSIGNED-STREAM>,mac=<hex>
 *   mac = HMAC(secret, "tfos-control/2 request\n" METHOD "\n" PATH?QUERY "\n" ts "\n" nonce "\n" body)
 * The driver accepts a timestamp within ±5 min and each nonce once, so a captured request cannot
 * be replayed; it checks the declared body hash after reading the body.
 * Responses (driver → launcher, and the WebSocket upgrade) carry
 *   X-TFOS-MAC: HMAC(secret, "tfos-control/2 response\n" nonce "\n" status "\n" sha256(body))
 * so nobody who answers to the driver's address can hand executors a job or a command.
 * WebSocket messages (trainers ⇄ driver) are JSON {seq, msg, mac} with
 *   mac = HMAC(secret, "tfos-control/2 ws " dir "\n" nonce "\n" seq "\n" JSON(msg)),  dir d2n | n2d,
 * seq counting from 0 per direction and nonce the upgrade request's: nothing can be injected,
 * replayed or reordered on an open socket.
 *
 * Bootstrap: routes hand the launcher only a one-time token. Its first request,
 *   POST /v1/launcher/bootstrap {ts, nonce, proof = HMAC(token, "tfos-bootstrap/1 client\n" ts "\n" nonce)}
 * is answered with {proof = HMAC(token, "tfos-bootstrap/1 server\n" nonce), sealed} where sealed is
 * the secret XOR a keystream HMAC(token, "tfos-bootstrap/1 seal\n" nonce "\n" i), i = 0, 1, ...
 * The token never crosses the wire and works once; a second use fails the cluster.
 */
import * as crypto from 'node:crypto';

export const AUTH_SCHEME = 'TFOS-HMAC';
export const RESPONSE_MAC_HEADER = 'x-tfos-mac';
export const UNSIGNED_STREAM = 'UNSIGNED-STREAM';
/** Largest accepted difference between a request's timestamp and the driver's clock. */
export const MAX_SKEW_MS = 5 * 60_000;

const hmac = (key: string, ...parts: Array<string | Buffer>) => {
  const h = crypto.createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
};

export function sha256Hex(body: Buffer | string): string {
  return crypto.createHash('sha256').update(body).digest('hex');
}

export interface RequestAuth {
  ts: number;
  nonce: string;
  body: string;
  mac: string;
}

function requestMac(secret: string, method: string, pathAndQuery: string, a: Omit<RequestAuth, 'mac'>): Buffer {
  return hmac(secret, `tfos-control/2 request\n${method.toUpperCase()}\n${pathAndQuery}\n${a.ts}\n${a.nonce}\n${a.body}`);
}

/** The Authorization header value of a request (`body`: the raw body, or UNSIGNED_STREAM). */
export function signRequest(
  secret: string,
  method: string,
  pathAndQuery: string,
  body: Buffer | string | typeof UNSIGNED_STREAM = '',
): { header: string; nonce: string } {
  const a = {
    ts: Date.now(),
    nonce: crypto.randomBytes(16).toString('hex'),
    body: body === UNSIGNED_STREAM ? UNSIGNED_STREAM : sha256Hex(body),
  };
  const mac = requestMac(secret, method, pathAndQuery, a).toString('hex');
  return { header: `${AUTH_SCHEME} ts=${a.ts},nonce=${a.nonce},body=${a.body},mac=${mac}`, nonce: a.nonce };
}

export function parseRequestAuth(header: string | undefined): RequestAuth | undefined {
  if (!header?.startsWith(`${AUTH_SCHEME} `)) return undefined;
  const fields = new Map(
    header
      .slice(AUTH_SCHEME.length + 1)
      .split(',')
      .map((kv) => kv.trim().split('=', 2) as [string, string]),
  );
  const ts = Number(fields.get('ts'));
  const nonce = fields.get('nonce') ?? '';
  const body = fields.get('body') ?? '';
  const mac = fields.get('mac') ?? '';
  if (
    !Number.isSafeInteger(ts) ||
    !/^[0-9a-f]{32}$/.test(nonce) ||
    !(/^[0-9a-f]{64}$/.test(body) || body === UNSIGNED_STREAM) ||
    !/^[0-9a-f]{64}$/.test(mac)
  )
    return undefined;
  return { ts, nonce, body, mac };
}

/** Remembers nonces for twice the skew window, so no request is accepted twice. */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  /** Why the request must be refused, or undefined when it is fresh. */
  check(a: RequestAuth, now = Date.now()): string | undefined {
    if (Math.abs(now - a.ts) > MAX_SKEW_MS)
      return `its timestamp is ${Math.round((now - a.ts) / 1000)} s off this driver's clock (more than ${MAX_SKEW_MS / 1000} s)`;
    for (const [n, t] of this.seen) {
      if (now - t <= 2 * MAX_SKEW_MS) break;
      this.seen.delete(n);
    }
    if (this.seen.has(a.nonce)) return 'it is a replay (its nonce was used before)';
    this.seen.set(a.nonce, now);
    return undefined;
  }
}

/** Whether the request's MAC is right (constant-time); the body hash is checked separately. */
export function verifyRequest(secret: string, method: string, pathAndQuery: string, a: RequestAuth): boolean {
  const expected = requestMac(secret, method, pathAndQuery, a);
  return crypto.timingSafeEqual(expected, Buffer.from(a.mac, 'hex'));
}

export function responseMac(secret: string, nonce: string, status: number, body: Buffer | string = ''): string {
  return hmac(secret, `tfos-control/2 response\n${nonce}\n${status}\n${sha256Hex(body)}`).toString('hex');
}

export function verifyResponse(secret: string, nonce: string, status: number, body: Buffer | string, mac: string | undefined): boolean {
  if (!mac || !/^[0-9a-f]{64}$/.test(mac)) return false;
  return crypto.timingSafeEqual(Buffer.from(responseMac(secret, nonce, status, body), 'hex'), Buffer.from(mac, 'hex'));
}

/** One WebSocket's message authentication: a sequence number per direction, bound to the upgrade nonce. */
export class WsSealer {
  private sent = 0;
  private received = 0;

  constructor(
    private readonly secret: string,
    private readonly nonce: string,
    private readonly side: 'driver' | 'node',
  ) {}

  private mac(dir: 'd2n' | 'n2d', seq: number, json: string): string {
    return hmac(this.secret, `tfos-control/2 ws ${dir}\n${this.nonce}\n${seq}\n${json}`).toString('hex');
  }

  seal(msg: unknown): string {
    const json = JSON.stringify(msg);
    const seq = this.sent++;
    return `{"seq":${seq},"mac":"${this.mac(this.side === 'driver' ? 'd2n' : 'n2d', seq, json)}","msg":${json}}`;
  }

  /** The message inside `text`; throws when it is not the next one the peer sent. */
  open(text: string): unknown {
    const env = JSON.parse(text) as { seq?: unknown; mac?: unknown; msg?: unknown };
    if (env.seq !== this.received || typeof env.mac !== 'string' || !/^[0-9a-f]{64}$/.test(env.mac)) {
      throw new Error(`message out of sequence or unsigned (expected #${this.received})`);
    }
    const json = JSON.stringify(env.msg);
    const expected = this.mac(this.side === 'driver' ? 'n2d' : 'd2n', this.received, json);
    if (!crypto.timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(env.mac, 'hex')))
      throw new Error(`message #${this.received} failed authentication`);
    this.received++;
    return env.msg;
  }
}

// ---- bootstrap ------------------------------------------------------------------------------

export interface BootstrapRequest {
  ts: number;
  nonce: string;
  proof: string;
}

export interface BootstrapAnswer {
  proof: string;
  sealed: string;
}

function keystream(token: string, nonce: string, n: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < n; i++) blocks.push(hmac(token, `tfos-bootstrap/1 seal\n${nonce}\n${i}`));
  return Buffer.concat(blocks).subarray(0, n);
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** The launcher's side (also used by tests): a request proving the token. */
export function bootstrapRequest(token: string): BootstrapRequest {
  const ts = Date.now();
  const nonce = crypto.randomBytes(16).toString('hex');
  return { ts, nonce, proof: hmac(token, `tfos-bootstrap/1 client\n${ts}\n${nonce}`).toString('hex') };
}

export function bootstrapProofOk(token: string, req: BootstrapRequest, now = Date.now()): boolean {
  if (
    !Number.isSafeInteger(req?.ts) ||
    typeof req.nonce !== 'string' ||
    !/^[0-9a-f]{32}$/.test(req.nonce) ||
    typeof req.proof !== 'string' ||
    !/^[0-9a-f]{64}$/.test(req.proof)
  )
    return false;
  if (Math.abs(now - req.ts) > MAX_SKEW_MS) return false;
  const expected = hmac(token, `tfos-bootstrap/1 client\n${req.ts}\n${req.nonce}`);
  return crypto.timingSafeEqual(expected, Buffer.from(req.proof, 'hex'));
}

export function bootstrapAnswer(token: string, req: BootstrapRequest, secret: string): BootstrapAnswer {
  const plain = Buffer.from(secret, 'utf8');
  return {
    proof: hmac(token, `tfos-bootstrap/1 server\n${req.nonce}`).toString('hex'),
    sealed: xor(plain, keystream(token, req.nonce, plain.length)).toString('hex'),
  };
}

/** The launcher's side: the secret from the driver's answer, after checking the driver's proof. */
export function openBootstrapAnswer(token: string, req: BootstrapRequest, ans: BootstrapAnswer): string {
  const expected = hmac(token, `tfos-bootstrap/1 server\n${req.nonce}`);
  if (
    typeof ans?.proof !== 'string' ||
    !/^[0-9a-f]{64}$/.test(ans.proof) ||
    !crypto.timingSafeEqual(expected, Buffer.from(ans.proof, 'hex'))
  ) {
    throw new Error('the driver could not prove the bootstrap token');
  }
  const sealed = Buffer.from(ans.sealed, 'hex');
  return xor(sealed, keystream(token, req.nonce, sealed.length)).toString('utf8');
}
