/**
 * A mocha root-hook plugin (loaded by .mocharc.json) that reports leaked handles instead of
 * hiding them behind `--exit`: when the run is over, whatever still keeps the process alive
 * (a socket, a server, a child process, a timer) is listed, and the run fails after a short grace.
 * A clean run exits on its own before the grace ends, so the check costs nothing.
 */
import type { ChildProcess } from 'node:child_process';
import * as net from 'node:net';

/** Seconds after the last test before leftover handles count as leaks (a killed child's exit, a closing socket). */
const GRACE_MS = Number(process.env.TFOS_TEST_LEAK_GRACE_MS ?? 10_000);

function describe(h: unknown): string | undefined {
  if (h === process.stdout || h === process.stderr || h === process.stdin) return undefined;
  const name = (h as object)?.constructor?.name ?? typeof h;
  if (h instanceof net.Server) {
    const a = h.address();
    return `server listening on ${typeof a === 'string' ? a : a ? `${a.address}:${a.port}` : '?'}`;
  }
  if (h instanceof net.Socket) {
    if ((h as net.Socket & { fd?: number }).fd !== undefined && [0, 1, 2].includes((h as unknown as { fd: number }).fd)) return undefined;
    return h.remoteAddress
      ? `socket ${h.localAddress}:${h.localPort} → ${h.remoteAddress}:${h.remotePort}`
      : `${name} (pipe or unconnected socket)`;
  }
  if (name === 'ChildProcess') {
    const c = h as ChildProcess;
    return `child process pid ${c.pid}: ${c.spawnargs.join(' ').slice(0, 200)}`;
  }
  if (name === 'Timeout') {
    const t = h as { _idleTimeout?: number; _onTimeout?: { name?: string } };
    return `timer (${t._idleTimeout} ms, ${t._onTimeout?.name || 'anonymous'})`;
  }
  return name;
}

/** What keeps the process alive besides stdio, described for a human. */
export function liveHandles(): string[] {
  const getHandles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
  const handles = getHandles ? getHandles.call(process) : [];
  return handles.map(describe).filter((d): d is string => d !== undefined);
}

export const mochaHooks = {
  afterAll(): void {
    const check = setTimeout(() => {
      const leaks = liveHandles();
      const resources = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
      process.stderr.write(
        `\nleak check: the process is still alive ${GRACE_MS / 1000} s after the last test; it leaked:\n` +
          `${(leaks.length ? leaks : resources).map((l) => `  - ${l}`).join('\n')}\n` +
          `(each test must close what it opens; mocha runs without --exit so that leaks show)\n`,
      );
      process.exit(1);
    }, GRACE_MS);
    check.unref();
  },
};
