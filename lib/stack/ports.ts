/** Port checks for the local stack: a taken port must be reported with what holds it. */
import * as net from 'node:net';
import { runAllowingFailure } from '../platform/exec';

/** True if nothing listens on host:port and we could bind it. */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** True if something accepts TCP connections on host:port. */
export function isPortOpen(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** "pid 1234 (java)" for whatever listens on the port, best effort via ss(8). */
export async function describePortHolder(port: number): Promise<string> {
  try {
    const res = await runAllowingFailure('ss', ['-Hltnp', `sport = :${port}`], { timeoutMs: 5000 });
    const m = /users:\(\("([^"]+)",pid=(\d+)/.exec(res.stdout);
    if (m) return `pid ${m[2]} (${m[1]})`;
  } catch {
    /* ss missing: fall through */
  }
  return 'an unknown process';
}

/** A free ephemeral port chosen by the kernel. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host }, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}
