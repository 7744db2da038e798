/**
 * Where the driver's control server listens and how the cluster reaches it. It binds the one
 * interface it advertises, never 0.0.0.0: the address this machine uses to reach the Spark master
 * or Livy server (the route picks it), loopback for local routes, or what the user names.
 */
import * as dgram from 'node:dgram';
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import * as os from 'node:os';

/** The local address the kernel would use to reach host:port (a UDP connect sends nothing). */
export function localAddressTowards(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    sock.once('error', () => {
      sock.close();
      resolve(undefined);
    });
    sock.connect(port || 9, host, () => {
      const addr = sock.address().address;
      sock.close();
      resolve(addr);
    });
  });
}

/** host[:port] of a Spark master or Livy URL (spark://h:7077, http://h:8998, k8s://https://h:6443); undefined for 'yarn', 'local'. */
export function targetHost(target: string): { host: string; port: number } | undefined {
  const m = /^(?:k8s:\/\/)?[a-z][a-z0-9+.-]*:\/\/(\[[^\]]+\]|[^/:,]+)(?::(\d+))?/i.exec(target);
  return m ? { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2] ?? 0) } : undefined;
}

export async function controlAddress(target: string, loopback: boolean, opts: { bindHost?: string; advertiseHost?: string }): Promise<{ bind: string; advertise: string }> {
  if (opts.bindHost) {
    const wildcard = opts.bindHost === '0.0.0.0' || opts.bindHost === '::';
    return { bind: opts.bindHost, advertise: opts.advertiseHost ?? (wildcard ? os.hostname() : opts.bindHost) };
  }
  if (opts.advertiseHost) {
    const bind = net.isIP(opts.advertiseHost) ? opts.advertiseHost : (await dns.lookup(opts.advertiseHost)).address;
    return { bind, advertise: opts.advertiseHost };
  }
  if (loopback) return { bind: '127.0.0.1', advertise: '127.0.0.1' };
  const t = targetHost(target);
  let resolved = t?.host;
  if (resolved && !net.isIP(resolved)) resolved = await dns.lookup(resolved).then((r) => r.address, () => undefined);
  const local = resolved ? await localAddressTowards(resolved, t!.port) : undefined;
  if (local) return { bind: local, advertise: local };
  // No host in the master URL (yarn): this machine's own name, bound on its address.
  const self = await dns.lookup(os.hostname()).then((r) => r.address, () => undefined);
  if (!self) throw new Error(`cannot tell which interface the cluster reaches this driver on (${target}): set controlBindHost / controlAdvertiseHost`);
  return { bind: self, advertise: os.hostname() };
}
