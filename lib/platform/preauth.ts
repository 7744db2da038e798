/**
 * No hold before authentication: every listener of ours (the driver's control server, a trainer's
 * cluster-server port and data port) admits a new connection only for a short time and only up
 * to a small number at once until it has proven the cluster secret. The protocol code calls
 * `authenticated(socket)` once the peer proved it; a socket that has not by the deadline is
 * destroyed, and past `maxPending` waiting sockets new ones are closed at once. So an idle or
 * garbage connection can neither stall a handshake forever nor exhaust file descriptors.
 */
import type * as net from 'node:net';

/** How long a connection may take to prove the cluster secret, by default. */
export const PREAUTH_TIMEOUT_MS = 5_000;

/**
 * The pre-authentication deadline in force: TFOS_PREAUTH_TIMEOUT_MS (milliseconds, 100–60000) when
 * set, e.g. longer for a congested network, else PREAUTH_TIMEOUT_MS. Trainers inherit it.
 */
export function preauthTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TFOS_PREAUTH_TIMEOUT_MS?.trim();
  if (!raw) return PREAUTH_TIMEOUT_MS;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 100 || ms > 60_000) {
    throw new Error(`TFOS_PREAUTH_TIMEOUT_MS must be an integer number of milliseconds from 100 to 60000, got '${raw}'`);
  }
  return ms;
}
/** Connections waiting to authenticate at once, per listener. */
export const PREAUTH_MAX_PENDING = 64;

export interface PreauthOptions {
  timeoutMs?: number;
  maxPending?: number;
  /** Told about every connection closed by this guard (never with secret material). */
  onReject?: (reason: string, remote: string) => void;
}

const pending = new WeakMap<net.Socket, () => void>();

function remoteOf(sock: net.Socket): string {
  const host = sock.remoteAddress ?? '?';
  return `${host.includes(':') ? `[${host}]` : host}:${sock.remotePort ?? '?'}`;
}

/** Puts `server`'s connections under the pre-authentication deadline and cap. */
export function guardListener(server: net.Server, opts: PreauthOptions = {}): void {
  const timeoutMs = opts.timeoutMs ?? preauthTimeoutMs();
  const maxPending = opts.maxPending ?? PREAUTH_MAX_PENDING;
  let waiting = 0;
  server.on('connection', (sock: net.Socket) => {
    const remote = remoteOf(sock);
    if (waiting >= maxPending) {
      opts.onReject?.(`${maxPending} connections are already waiting to authenticate`, remote);
      sock.destroy();
      return;
    }
    waiting++;
    const timer = setTimeout(() => {
      opts.onReject?.(`no proof of the cluster secret within ${timeoutMs} ms`, remote);
      sock.destroy();
    }, timeoutMs);
    timer.unref();
    const release = () => {
      if (pending.get(sock) !== release) return;
      pending.delete(sock);
      clearTimeout(timer);
      waiting--;
    };
    pending.set(sock, release);
    sock.once('close', release);
  });
}

/** The peer on `sock` proved the cluster secret: lift the deadline (no-op for unguarded sockets). */
export function authenticated(sock: net.Socket): void {
  pending.get(sock)?.();
}

/** Whether `sock` is still waiting to authenticate on a guarded listener. */
export function awaitingAuth(sock: net.Socket): boolean {
  return pending.has(sock);
}
