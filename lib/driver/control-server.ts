/**
 * The driver's control server: one HTTP port for the launcher and executor tasks (plain HTTP,
 * so the Python side needs only the standard library) and a WebSocket endpoint for trainers.
 * Every request must prove the per-cluster secret; see docs/protocol.md.
 */
import { EventEmitter } from 'node:events';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { authenticated, guardListener } from '../platform/preauth';
import { NodeToDriver, PROTOCOL_VERSION, RegisterMessage } from '../protocol/control';
import { JobSpec, LauncherCommand, LauncherEvent, parseLauncherEvent, protocolSchema } from '../protocol/launcher';

export interface ControlServerEvents {
  /** A trainer opened its WebSocket and sent a valid register message. */
  register: (msg: RegisterMessage, socket: WebSocket) => void;
  /** A later message from a registered trainer. */
  'node-message': (nodeIndex: number, attempt: number, msg: NodeToDriver) => void;
  'node-closed': (nodeIndex: number, attempt: number) => void;
  'launcher-event': (ev: LauncherEvent) => void;
  /** One line of a trainer's stdout/stderr, relayed by its executor task. */
  log: (nodeIndex: number, attempt: number, line: string) => void;
  /** A connection was refused or closed before proving the secret (`what` never holds secrets). */
  'auth-failure': (remote: string, what: string) => void;
}

export class ControlServer extends EventEmitter {
  private readonly http: http.Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  private readonly commands: LauncherCommand[] = [];
  private readonly waiters: Array<() => void> = [];
  private readonly sockets = new Set<WebSocket>();
  private address?: AddressInfo;

  constructor(
    private readonly secret: string,
    private readonly jobSpec: () => JobSpec,
  ) {
    super();
    this.http = http.createServer((req, res) => this.onRequest(req, res));
    this.http.on('upgrade', (req, socket, head) => {
      if (req.url !== '/v1/nodes' || !this.authorized(req)) {
        this.emit('auth-failure', remoteOf(req), `WebSocket ${pathOf(req)}: missing or wrong proof of the cluster secret`);
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      authenticated(req.socket);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onNodeSocket(ws, req));
    });
    // Long-polls and log streams stay open; never time them out on the server side. A connection
    // that has not sent an authenticated request within the pre-auth bound is closed, though.
    this.http.requestTimeout = 0;
    this.http.headersTimeout = 30_000;
    guardListener(this.http, { onReject: (why, remote) => this.emit('auth-failure', remote, why) });
  }

  async listen(host: string, port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen({ host, port }, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.address = this.http.address() as AddressInfo;
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
    for (const wake of this.waiters.splice(0)) wake();
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private authorized(req: http.IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    const expected = Buffer.from(this.secret);
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://control');
    if (!this.authorized(req)) {
      this.emit('auth-failure', remoteOf(req), `${req.method} ${url.pathname}: missing or wrong proof of the cluster secret`);
      // A failed proof ends the connection: no second guess on the same socket.
      res.setHeader('connection', 'close');
      reply(res, 401, { error: 'missing or wrong cluster secret' });
      req.resume();
      res.once('finish', () => req.socket.destroySoon());
      return;
    }
    authenticated(req.socket);
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /v1/launcher/job':
        return reply(res, 200, this.jobSpec());
      // The schema for a launcher that was shipped without spark-jobs/protocol.json beside it.
      case 'GET /v1/launcher/protocol':
        return reply(res, 200, protocolSchema());
      case 'POST /v1/launcher/event':
        return void readJson(req).then(
          (body) => {
            let ev: LauncherEvent;
            try {
              ev = parseLauncherEvent(body);
            } catch (err) {
              return reply(res, 400, { error: err instanceof Error ? err.message : String(err) });
            }
            reply(res, 204);
            this.emit('launcher-event', ev);
          },
          (err) => reply(res, 400, { error: String(err) }),
        );
      case 'GET /v1/launcher/command':
        return void this.nextCommand(Math.min(Number(url.searchParams.get('wait') ?? 5), 30) * 1000).then((cmd) => {
          if (cmd) reply(res, 200, cmd);
          else reply(res, 204);
        });
      case 'POST /v1/launcher/log':
        return this.onLogStream(req, res, Number(url.searchParams.get('node')), Number(url.searchParams.get('attempt') ?? 0));
      default:
        return reply(res, 404, { error: `no route ${route}` });
    }
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

  private onNodeSocket(ws: WebSocket, req: http.IncomingMessage): void {
    this.sockets.add(ws);
    let registered: RegisterMessage | undefined;
    ws.on('message', (data) => {
      let msg: NodeToDriver;
      try {
        msg = JSON.parse(data.toString()) as NodeToDriver;
      } catch {
        ws.close(1003, 'not JSON');
        return;
      }
      if (!registered) {
        if (msg.type !== 'register') {
          ws.close(1008, 'first message must be register');
          return;
        }
        if (msg.protocol !== PROTOCOL_VERSION) {
          // A trainer from another version of tfjs-on-spark: refuse it with a reason it can show.
          this.emit('auth-failure', remoteOf(req), `node ${msg.nodeIndex} registered with protocol ${msg.protocol}; this driver speaks ${PROTOCOL_VERSION}`);
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

function reply(res: http.ServerResponse, status: number, body?: unknown): void {
  if (res.headersSent) return;
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function readJson(req: http.IncomingMessage, limit = 16 * 1024 * 1024): Promise<unknown> {
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
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}
