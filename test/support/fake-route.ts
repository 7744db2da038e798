/**
 * Stand-ins for what a TFClusterHandle talks to, so its state machine can be specified without
 * Spark: a control server (an event emitter that records launcher commands), trainer sockets
 * that record what the driver sends them, and a submitted application whose end the test decides.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WebSocket } from 'ws';
import { TFClusterHandle } from '../../lib/driver/cluster';
import type { ControlServer } from '../../lib/driver/control-server';
import { assignRoles, Reservation } from '../../lib/driver/reservation';
import type { AppExit, SubmittedApp } from '../../lib/driver/routes/route';
import { DriverToNode, NodeToDriver, PROTOCOL_VERSION } from '../../lib/protocol/control';
import { InputMode } from '../../lib/protocol/input-mode';
import type { LauncherCommand, LauncherEvent } from '../../lib/protocol/launcher';

export class FakeControlServer extends EventEmitter {
  readonly commands: LauncherCommand[] = [];
  closed = false;
  /** What the launcher does with a command (the fake cluster's launcher stops Spark on 'shutdown'). */
  onCommand?: (cmd: LauncherCommand) => void;
  sendLauncherCommand(cmd: LauncherCommand): void {
    this.commands.push(cmd);
    this.onCommand?.(cmd);
  }
  /** The real server seals each message for the trainer; the fake hands the JSON to the socket. */
  send(ws: FakeSocket, msg: unknown, cb?: (err?: Error) => void): void {
    ws.send(JSON.stringify(msg), cb);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A trainer's WebSocket as the driver sees it: what was sent to it, and whether it was closed. */
export class FakeSocket {
  readonly sent: DriverToNode[] = [];
  closedWith?: { code: number; reason: string };
  send(data: string, cb?: (err?: Error) => void): void {
    this.sent.push(JSON.parse(data) as DriverToNode);
    cb?.();
  }
  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }
  types(): string[] {
    return this.sent.map((m) => m.type);
  }
}

/** A Spark application the test ends: `end(exit)`; kill() ends it as a route's kill would. */
export class FakeApp implements SubmittedApp {
  readonly describe = 'fake application';
  killed = 0;
  readonly exited: Promise<AppExit>;
  private resolveExit!: (e: AppExit) => void;
  constructor() {
    this.exited = new Promise((r) => (this.resolveExit = r));
  }
  end(exit: AppExit): void {
    this.resolveExit(exit);
  }
  async kill(): Promise<void> {
    this.killed++;
    this.resolveExit({ ok: false, detail: 'killed', logTail: '' });
  }
}

export interface FakeCluster {
  handle: TFClusterHandle;
  server: FakeControlServer;
  app: FakeApp;
  tokenFile: string;
  sockets: FakeSocket[];
  /** Node i (of the roles) registers, as attempt `attempt`. */
  register(i: number, attempt?: number): FakeSocket;
  registerAll(): FakeSocket[];
  /** A message from node i's trainer. */
  say(i: number, msg: NodeToDriver, attempt?: number): void;
  launcher(ev: LauncherEvent): void;
  /** Node i's WebSocket closed. */
  drop(i: number, attempt?: number): void;
}

/** A handle over `numExecutors` nodes (numPs of them ps) with its application already submitted. */
export function fakeCluster(opts: {
  numExecutors: number;
  numPs: number;
  reservationTimeoutMs?: number;
  lostNodeGraceMs?: number;
}): FakeCluster {
  const roles = assignRoles({ clusterSize: opts.numExecutors, numPs: opts.numPs });
  const server = new FakeControlServer();
  const app = new FakeApp();
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-fake-'));
  const tokenFile = path.join(runDir, 'bootstrap.token');
  fs.writeFileSync(tokenFile, 'secret', { mode: 0o600 });
  const handle = new TFClusterHandle({
    job: {
      protocol: PROTOCOL_VERSION,
      clusterId: 'c0ffee',
      appName: 'fake',
      clusterSize: roles.length,
      roles,
      trainerCommand: ['node'],
      trainerEnv: {},
      gpusPerNode: 0,
      reservationTimeoutSec: 60,
    },
    reservation: new Reservation(roles),
    server: server as unknown as ControlServer,
    tokenFile,
    runDir,
    reservationTimeoutMs: opts.reservationTimeoutMs ?? 60_000,
    lostNodeGraceMs: opts.lostNodeGraceMs ?? 20,
    inputMode: InputMode.TENSORFLOW,
    ctxBase: {
      clusterId: 'c0ffee',
      defaultFS: 'file://',
      workingDir: '/tmp',
      inputMode: InputMode.TENSORFLOW,
      module: '/m.js',
      fn: 'default',
      args: [],
    },
  });
  handle.attachApp(app);
  // Like the real launcher: on 'shutdown' it stops Spark, and the application ends.
  server.onCommand = (cmd) => {
    if (cmd.type === 'shutdown') app.end({ ok: true, detail: `stopped (${cmd.reason})`, logTail: '' });
  };
  const sockets: FakeSocket[] = [];
  const cluster: FakeCluster = {
    handle,
    server,
    app,
    tokenFile,
    sockets,
    register(i, attempt = 0) {
      const ws = new FakeSocket();
      sockets[i] = ws;
      const msg = {
        type: 'register' as const,
        protocol: PROTOCOL_VERSION,
        nodeIndex: i,
        attempt,
        executorId: `e${i}`,
        host: '127.0.0.1',
        port: 9000 + i,
        dataPort: 9100 + i,
        pid: 100 + i,
      };
      server.emit('register', msg, ws as unknown as WebSocket);
      return ws;
    },
    registerAll: () => roles.map((_, i) => cluster.register(i)),
    say: (i, msg, attempt = 0) => void server.emit('node-message', i, attempt, msg),
    launcher: (ev) => void server.emit('launcher-event', ev),
    drop: (i, attempt = 0) => void server.emit('node-closed', i, attempt),
  };
  return cluster;
}
