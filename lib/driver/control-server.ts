/**
 * The driver's control server: one HTTP port for the launcher and executor tasks (plain HTTP,
 * so the Python side needs only the standard library) and a WebSocket endpoint for trainers.
 * Every request proves the per-cluster secret with a one-time HMAC and every answer carries the
 * driver's own proof (lib/protocol/control-auth.ts); the launcher's first request exchanges its
 * one-time bootstrap token for the secret. See docs/protocol.md and docs/security.md.
 */
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { authenticated, guardListener } from '../platform/preauth';
import {
  BootstrapRequest,
  bootstrapAnswer,
  bootstrapProofOk,
  parseRequestAuth,
  ReplayGuard,
  RequestAuth,
  RESPONSE_MAC_HEADER,
  responseMac,
  sha256Hex,
  UNSIGNED_STREAM,
  verifyRequest,
  WsSealer,
} from '../protocol/control-auth';
import { NodeToDriver, PROTOCOL_VERSION, RegisterMessage } from '../protocol/control';
import { JobSpec, LauncherCommand, LauncherEvent, parseLauncherEvent, protocolSchema } from '../protocol/launcher';

export interface ControlServerEvents {
  /** A trainer opened its WebSocket and sent a valid register message. */
  register: (msg: RegisterMessage, socket: WebSocket) => void;
  /** A later message from a registered trainer. */
  'node-message': (nodeIndex: number, attempt: number, msg: NodeToDriver) => void;
  'node-closed': (nodeIndex: number, attempt: number) => void;
  /** A registered trainer answered no heartbeat for silentMs (host down, link cut); its socket is then closed. */
  'node-unresponsive': (nodeIndex: number, attempt: number, silentMs: number) => void;
  'launcher-event': (ev: LauncherEvent) => void;
  /** One line of a trainer's stdout/stderr, relayed by its executor task. */
  log: (nodeIndex: number, attempt: number, line: string) => void;
  /** A connection was refused or closed before proving the secret (`what` never holds secrets). */
  'auth-failure': (remote: string, what: string) => void;
  /** The bootstrap token was presented again after it had been exchanged: someone else read it. */
  'token-reuse': (remote: string, first: string) => void;
}

export class ControlServer extends EventEmitter {
  private readonly http: http.Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  private readonly commands: LauncherCommand[] = [];
  private readonly waiters: Array<() => void> = [];
  private readonly sockets = new Set<WebSocket>();
  private readonly sealers = new WeakMap<WebSocket, WsSealer>();
  private readonly replay = new ReplayGuard();
  /** Who exchanged the bootstrap token (it works once). */
  private tokenUsedBy?: string;
  private address?: AddressInfo;
  /** When the launcher last made an authenticated request (0: never): is the Spark side alive? */
  lastLauncherContact = 0;
  /** The launcher's last word, once it sent it: its cluster ended ('finished') or failed. */
  launcherEnded?: 'finished' | 'failed';
  private heartbeat?: NodeJS.Timeout;

  /**
   * `bootstrapToken`: the one-time token the routes hand the launcher instead of the secret
   * (without one, no bootstrap is possible: every party must already hold the secret).
   * heartbeatTimeoutMs: a trainer whose WebSocket answers no ping for this long is declared
   * unresponsive. A host that vanishes (link cut, power off) sends no FIN or RST, so without
   * pings its socket would look open for the many minutes TCP takes to give up.
   */
  constructor(
    private readonly secret: string,
    private readonly jobSpec: () => JobSpec,
    private readonly bootstrapToken?: string,
    private readonly heartbeatTimeoutMs = 30_000,
  ) {
    super();
    this.http = http.createServer((req, res) => this.onRequest(req, res));
    this.http.on('upgrade', (req, socket, head) => {
      const auth = req.url === '/v1/nodes' ? this.checkRequest(req) : 'no WebSocket here';
      if (typeof auth === 'string') {
        this.emit('auth-failure', remoteOf(req), `WebSocket ${pathOf(req)}: ${auth}`);
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      authenticated(req.socket);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onNodeSocket(ws, req, auth.nonce));
    });
    // The upgrade answer proves the secret too: a trainer takes orders only from the real driver.
    this.wss.on('headers', (headers: string[], req: http.IncomingMessage) => {
      const nonce = parseRequestAuth(req.headers.authorization)?.nonce ?? '';
      headers.push(`X-TFOS-MAC: ${responseMac(this.secret, nonce, 101)}`);
    });
    // Long-polls and log streams stay open; never time them out on the server side. A connection
    // that has not sent an authenticated request within the pre-auth bound is closed, though.
    this.http.requestTimeout = 0;
    this.http.headersTimeout = 30_000;
    guardListener(this.http, { onReject: (why, remote) => this.emit('auth-failure', remote, why) });
  }

  async listen(host: string, port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
        const why =
          err.code === 'EADDRINUSE'
            ? 'the port is taken by another process'
            : err.code === 'EADDRNOTAVAIL'
              ? 'no interface of this machine has that address'
              : err.message;
        reject(
          new Error(
            `the driver's control server cannot listen on ${where}: ${why} (${err.code ?? 'error'}); choose another controlPort / controlBindHost`,
          ),
        );
      };
      this.http.once('error', onError);
      this.http.listen({ host, port }, () => {
        this.http.off('error', onError);
        resolve();
      });
    });
    this.address = this.http.address() as AddressInfo;
    const interval = Math.max(250, Math.min(5000, this.heartbeatTimeoutMs / 4));
    this.pingIntervalMs = interval;
    this.lastPingTick = Date.now();
    this.heartbeat = setInterval(() => this.pingNodes(), interval);
    this.heartbeat.unref();
  }

  private readonly lastPong = new Map<WebSocket, number>();
  private pingIntervalMs = 0;
  private lastPingTick = 0;

  private pingNodes(): void {
    const now = Date.now();
    // The driver's own event loop was blocked (a long synchronous call in the user's program, a
    // stopped process): timers run before the pongs that arrived meanwhile are read, so silence
    // over that gap says nothing about the nodes. Measure it only over time the driver listened.
    if (now - this.lastPingTick > 2 * this.pingIntervalMs) for (const ws of this.sockets) this.lastPong.set(ws, now);
    this.lastPingTick = now;
    for (const ws of this.sockets) {
      const last = this.lastPong.get(ws) ?? now;
      if (now - last > this.heartbeatTimeoutMs) {
        this.lastPong.delete(ws);
        ws.emit('unresponsive', now - last);
        ws.terminate();
        continue;
      }
      ws.ping();
    }
  }

  /** Base URL as trainers and the launcher reach it (advertisedHost may differ from the bind host). */
  url(advertisedHost?: string): string {
    if (!this.address) throw new Error('control server is not listening');
    const host = advertisedHost ?? this.address.address;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.address.port}`;
  }

  /** Queues a command for the launcher's next poll. */
  sendLauncherCommand(cmd: LauncherCommand): void {
    this.commands.push(cmd);
    for (const wake of this.waiters.splice(0)) wake();
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const wake of this.waiters.splice(0)) wake();
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  /** A message to a trainer's socket, sealed for it; `cb` hears of a failed send. */
  send(ws: WebSocket, msg: unknown, cb?: (err?: Error) => void): void {
    const sealer = this.sealers.get(ws);
    if (!sealer) return cb?.(new Error('not a trainer socket of this server'));
    ws.send(sealer.seal(msg), cb);
  }

  /** The request's proof, or why it is refused (never containing secret material). */
  private checkRequest(req: http.IncomingMessage): RequestAuth | string {
    const auth = parseRequestAuth(req.headers.authorization);
    if (!auth) return 'no proof of the cluster secret';
    if (!verifyRequest(this.secret, req.method ?? '', req.url ?? '', auth)) return 'wrong proof of the cluster secret';
    if (auth.body === UNSIGNED_STREAM && !(req.method === 'POST' && pathOf(req) === '/v1/launcher/log'))
      return 'an unsigned body is only allowed for log streams';
    return this.replay.check(auth) ?? auth;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://control');
    if (req.method === 'POST' && url.pathname === '/v1/launcher/bootstrap') return this.onBootstrap(req, res);
    const auth = this.checkRequest(req);
    if (typeof auth === 'string') {
      this.emit('auth-failure', remoteOf(req), `${req.method} ${url.pathname}: ${auth}`);
      // A failed proof ends the connection: no second guess on the same socket.
      res.setHeader('connection', 'close');
      reply(res, 401, { error: `refused: ${auth}` });
      req.resume();
      res.once('finish', () => req.socket.destroySoon());
      return;
    }
    authenticated(req.socket);
    if (url.pathname.startsWith('/v1/launcher/')) this.lastLauncherContact = Date.now();
    const answer = (status: number, body?: unknown) =>
      reply(res, status, body, (text) => responseMac(this.secret, auth.nonce, status, text));
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /v1/launcher/job':
        return answer(200, this.jobSpec());
      // The schema for a launcher that was shipped without spark-jobs/protocol.json beside it.
      case 'GET /v1/launcher/protocol':
        return answer(200, protocolSchema());
      case 'POST /v1/launcher/event':
        return void readBody(req).then(
          (raw) => {
            if (sha256Hex(raw) !== auth.body) return answer(400, { error: 'the body is not the one the request signed' });
            let ev: LauncherEvent;
            try {
              ev = parseLauncherEvent(JSON.parse(raw.toString('utf8')));
            } catch (err) {
              return answer(400, { error: err instanceof Error ? err.message : String(err) });
            }
            answer(204);
            if (ev.type === 'nodes-finished' || ev.type === 'stopped') this.launcherEnded = 'finished';
            else if (ev.type === 'failed') this.launcherEnded = 'failed';
            this.emit('launcher-event', ev);
          },
          (err) => answer(400, { error: String(err) }),
        );
      case 'GET /v1/launcher/command':
        return void this.nextCommand(Math.min(Number(url.searchParams.get('wait') ?? 5), 30) * 1000).then((cmd) => {
          if (cmd) answer(200, cmd);
          else answer(204);
        });
      case 'POST /v1/launcher/log':
        return this.onLogStream(req, res, Number(url.searchParams.get('node')), Number(url.searchParams.get('attempt') ?? 0));
      default:
        return answer(404, { error: `no route ${route}` });
    }
  }

  /**
   * The launcher's first request: it proves the one-time bootstrap token and gets the secret,
   * sealed with that token. The token works once; a second valid use means someone else read it
   * (from a log, an argv, Livy's API): the cluster is failed rather than shared.
   */
  private onBootstrap(req: http.IncomingMessage, res: http.ServerResponse): void {
    const remote = remoteOf(req);
    const refuse = (why: string) => {
      this.emit('auth-failure', remote, `POST /v1/launcher/bootstrap: ${why}`);
      res.setHeader('connection', 'close');
      reply(res, 401, { error: `refused: ${why}` });
      res.once('finish', () => req.socket.destroySoon());
    };
    void readBody(req, 4096).then(
      (raw) => {
        let body: BootstrapRequest;
        try {
          body = JSON.parse(raw.toString('utf8')) as BootstrapRequest;
        } catch {
          return refuse('not JSON');
        }
        if (!this.bootstrapToken || !bootstrapProofOk(this.bootstrapToken, body)) return refuse('no valid proof of the bootstrap token');
        if (this.tokenUsedBy) {
          this.emit('token-reuse', remote, this.tokenUsedBy);
          return refuse('the bootstrap token was already used');
        }
        this.tokenUsedBy = remote;
        authenticated(req.socket);
        reply(res, 200, bootstrapAnswer(this.bootstrapToken, body, this.secret));
      },
      (err) => refuse(String(err instanceof Error ? err.message : err)),
    );
  }

  private nextCommand(waitMs: number): Promise<LauncherCommand | undefined> {
    if (this.commands.length) return Promise.resolve(this.commands.shift());
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(this.commands.shift());
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(undefined);
      }, waitMs);
      this.waiters.push(wake);
    });
  }

  /** A streamed (chunked) POST of newline-separated log lines from one executor task. */
  private onLogStream(req: http.IncomingMessage, res: http.ServerResponse, node: number, attempt: number): void {
    // (Its body is a stream, not signed: it only carries log lines, on a connection whose request was.)
    let pending = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        this.emit('log', node, attempt, pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    req.on('end', () => {
      if (pending) this.emit('log', node, attempt, pending);
      reply(res, 204);
    });
    req.on('error', () => {
      /* the task ended abruptly: its executor log still has the lines */
    });
  }

  private onNodeSocket(ws: WebSocket, req: http.IncomingMessage, nonce: string): void {
    this.sockets.add(ws);
    const sealer = new WsSealer(this.secret, nonce, 'driver');
    this.sealers.set(ws, sealer);
    this.lastPong.set(ws, Date.now());
    ws.on('pong', () => this.lastPong.set(ws, Date.now()));
    let registered: RegisterMessage | undefined;
    ws.once('unresponsive', (silentMs: number) => {
      if (registered) this.emit('node-unresponsive', registered.nodeIndex, registered.attempt, silentMs);
    });
    ws.on('message', (data) => {
      let msg: NodeToDriver;
      try {
        msg = sealer.open(data.toString()) as NodeToDriver;
      } catch (err) {
        // Not from the trainer that opened this socket: drop the socket, not the cluster's word on it.
        this.emit('auth-failure', remoteOf(req), `WebSocket message: ${(err as Error).message}`);
        ws.close(1008, 'message failed authentication');
        return;
      }
      if (!registered) {
        if (msg.type !== 'register') {
          ws.close(1008, 'first message must be register');
          return;
        }
        if (msg.protocol !== PROTOCOL_VERSION) {
          // A trainer from another version of tfjs-on-spark: refuse it with a reason it can show.
          this.emit(
            'auth-failure',
            remoteOf(req),
            `node ${msg.nodeIndex} registered with protocol ${msg.protocol}; this driver speaks ${PROTOCOL_VERSION}`,
          );
          ws.close(1008, `protocol ${msg.protocol} is not supported (driver speaks ${PROTOCOL_VERSION})`);
          return;
        }
        registered = msg;
        this.emit('register', msg, ws);
        return;
      }
      this.emit('node-message', registered.nodeIndex, registered.attempt, msg);
    });
    ws.on('close', () => {
      this.sockets.delete(ws);
      this.lastPong.delete(ws);
      if (registered) this.emit('node-closed', registered.nodeIndex, registered.attempt);
    });
    ws.on('error', () => {
      /* 'close' follows */
    });
  }
}

function remoteOf(req: http.IncomingMessage): string {
  const host = req.socket.remoteAddress ?? '?';
  return `${host.includes(':') ? `[${host}]` : host}:${req.socket.remotePort ?? '?'}`;
}

/** The request path without its query string (which is not logged). */
function pathOf(req: http.IncomingMessage): string {
  return (req.url ?? '').split('?')[0].slice(0, 200);
}

/** Answers with JSON (or nothing); `mac` gives the X-TFOS-MAC over the exact body text. */
function reply(res: http.ServerResponse, status: number, body?: unknown, mac?: (text: string) => string): void {
  if (res.headersSent) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  const headers: Record<string, string | number> = { 'content-length': Buffer.byteLength(text) };
  if (text) headers['content-type'] = 'application/json';
  if (mac) headers[RESPONSE_MAC_HEADER] = mac(text);
  res.writeHead(status, headers).end(text);
}

function readBody(req: http.IncomingMessage, limit = 16 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error(`request body over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
