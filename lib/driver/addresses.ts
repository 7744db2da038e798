/**
 * Which address of this machine the cluster sees. On one machine everything is loopback; on a real
 * cluster (or the namespaced hosts of `tfos stack up --hosts N`) executors and the Spark driver
 * must be given the address of the interface that routes to the cluster, never 127.0.0.1 and not
 * the machine's host name (which often resolves to loopback in /etc/hosts).
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

/** Thrown when no interface of this machine routes to the cluster's host. */
export class NoRouteError extends Error {
  constructor(
    readonly host: string,
    cause: string,
  ) {
    super(`no local address routes to ${host} (the cluster's master or Livy host): ${cause}; set controlBindHost/controlAdvertiseHost`);
    this.name = 'NoRouteError';
  }
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

/**
 * The host a route talks to: a spark:// master (the first of an HA list), a k8s:// API server, or
 * a Livy URL. 'local' for local masters; undefined when the master names no host (e.g. `yarn`,
 * whose ResourceManager is in HADOOP_CONF_DIR/YARN_CONF_DIR).
 */
export function targetHost(masterOrUrl: string): string | undefined {
  if (/^local(\[|-cluster\[|$)/.test(masterOrUrl)) return 'local';
  const m = /^spark:\/\/([^,/]+)/.exec(masterOrUrl);
  if (m) return new URL(`http://${m[1]}`).hostname;
  const url = masterOrUrl.replace(/^k8s:\/\//, '');
  try {
    return new URL(url).hostname || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The local address the kernel would use to reach `host` (a UDP connect sends nothing; it only
 * picks the route). A host name is resolved first.
 */
export function localAddressTowards(host: string): Promise<string> {
  const h = host.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(h) ? 'udp6' : 'udp4');
    sock.once('error', (err) => {
      sock.close();
      reject(new NoRouteError(h, err.message));
    });
    sock.connect(9, h, () => {
      const addr = sock.address().address;
      sock.close();
      resolve(addr);
    });
  });
}
