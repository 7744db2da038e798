/** The trainer's WebSocket to the driver's control server (register, receive ctx, report). */
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { DriverToNode, NodeToDriver, RegisterMessage, bearer } from '../protocol/control';

export class NodeControl extends EventEmitter {
  private constructor(private readonly ws: WebSocket) {
    super();
    ws.on('message', (data) => {
      try {
        this.emit('message', JSON.parse(data.toString()) as DriverToNode);
      } catch (err) {
        this.emit('error', new Error(`bad message from driver: ${String(err)}`));
      }
    });
    ws.on('close', (code, reason) => this.emit('close', code, reason.toString()));
    ws.on('error', (err) => this.emit('connection-error', err));
  }

  static connect(controlUrl: string, secret: string, timeoutMs = 30_000): Promise<NodeControl> {
    const wsUrl = `${controlUrl.replace(/^http/, 'ws')}/v1/nodes`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { headers: { authorization: bearer(secret) }, handshakeTimeout: timeoutMs });
      ws.once('open', () => resolve(new NodeControl(ws)));
      ws.once('error', (err) => reject(new Error(`cannot reach the driver at ${wsUrl}: ${err.message}`)));
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`driver at ${wsUrl} refused this node: HTTP ${res.statusCode} (wrong cluster secret?)`)),
      );
    });
  }

  send(msg: NodeToDriver | RegisterMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState !== WebSocket.OPEN) return reject(new Error('connection to the driver is closed'));
      this.ws.send(JSON.stringify(msg), (err) => (err ? reject(err) : resolve()));
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
