/**
 * The trainer's WebSocket to the driver's control server (register, receive ctx, report).
 * Both ends prove the cluster secret: the upgrade request is signed, the driver's answer carries
 * its MAC, and every message is sealed with a sequence number (lib/protocol/control-auth.ts), so
 * only the real driver can hand this trainer a module to run.
 */
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { RESPONSE_MAC_HEADER, signRequest, verifyResponse, WsSealer } from '../protocol/control-auth';
import { DriverToNode, NodeToDriver, RegisterMessage } from '../protocol/control';

export class NodeControl extends EventEmitter {
  private constructor(
    private readonly ws: WebSocket,
    private readonly sealer: WsSealer,
  ) {
    super();
    ws.on('message', (data) => {
      let msg: DriverToNode;
      try {
        msg = sealer.open(data.toString()) as DriverToNode;
      } catch (err) {
        // Someone on the path tampered with the stream: this connection can no longer be trusted.
        console.error(`tfos: dropped the connection to the driver: ${(err as Error).message}`);
        ws.terminate();
        return;
      }
      this.emit('message', msg);
    });
    ws.on('close', (code, reason) => this.emit('close', code, reason.toString()));
    ws.on('error', (err) => this.emit('connection-error', err));
  }

  static connect(controlUrl: string, secret: string, timeoutMs = 30_000): Promise<NodeControl> {
    const wsUrl = `${controlUrl.replace(/^http/, 'ws')}/v1/nodes`;
    const { header, nonce } = signRequest(secret, 'GET', '/v1/nodes');
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { headers: { authorization: header }, handshakeTimeout: timeoutMs });
      let driverProved = false;
      ws.once('upgrade', (res) => {
        driverProved = verifyResponse(secret, nonce, 101, '', res.headers[RESPONSE_MAC_HEADER] as string | undefined);
      });
      ws.once('open', () => {
        if (driverProved) return resolve(new NodeControl(ws, new WsSealer(secret, nonce, 'node')));
        ws.terminate();
        reject(new Error(`the server at ${wsUrl} could not prove this cluster's secret: not our driver (or another cluster on that port)`));
      });
      ws.once('error', (err) => reject(new Error(`cannot reach the driver at ${wsUrl}: ${err.message}`)));
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`driver at ${wsUrl} refused this node: HTTP ${res.statusCode} (wrong cluster secret?)`)),
      );
    });
  }

  send(msg: NodeToDriver | RegisterMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState !== WebSocket.OPEN) return reject(new Error('connection to the driver is closed'));
      this.ws.send(this.sealer.seal(msg), (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000, 'done');
      setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 2000).unref();
    });
  }
}
