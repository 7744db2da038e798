/**
 * A private network of hosts on one machine, for `tfos stack up --hosts N`: one Linux network
 * namespace per host, each joined by a veth pair to one bridge in the root namespace.
 *
 * Isolation rules (this runs on shared machines): the bridge has no uplink (nothing but our veths
 * is attached), no namespace has a default route, and every address lives in a /24 that no
 * existing route covers, so traffic can only go between our hosts and the root namespace (where
 * the driver runs, reaching them through the bridge address). Everything created is named after
 * the network id, recorded before it is created, and removed by `destroyNetwork` — also after a
 * crash, from the recorded plan.
 */
import * as crypto from 'node:crypto';
import { run, runAllowingFailure } from '../platform/exec';
import { isAlive } from '../platform/process-group';
import { sleep } from '../platform/sleep';

export interface NetworkHost {
  /** Short host name: a, b, c ... */
  name: string;
  /** The namespace the host's processes run in (`ip netns exec <netns> ...`). */
  netns: string;
  address: string;
  /** The root-namespace end of the host's veth pair (attached to the bridge); down = link cut. */
  hostLink: string;
}

export interface NetworkPlan {
  id: string;
  bridge: string;
  /** The bridge's address: how the root namespace (the driver) appears to the hosts. */
  gateway: string;
  /** e.g. 10.213.7.0/24 */
  subnet: string;
  hosts: NetworkHost[];
}

/** Failure of an `ip` step, naming the object it was creating or removing. */
export class NetworkError extends Error {
  constructor(
    readonly step: string,
    readonly object: string,
    cause: unknown,
  ) {
    super(`network namespace setup: ${step} ${object} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'NetworkError';
  }
}

const HOST_NAMES = 'abcdefghijklmnopqrstuvwxyz';

/** The /24s already routed here (any interface): a plan must not overlap them. */
async function routedPrefixes(): Promise<string[]> {
  const res = await run('ip', ['-4', 'route', 'show', 'table', 'all'], { timeoutMs: 10_000 });
  return res.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((p) => /^\d+\.\d+\.\d+\.\d+/.test(p));
}

/** True if `prefix` (a.b.c.d/n, or an address) and the /24 of `candidate` share an address. */
export function overlaps(prefix: string, candidate: string): boolean {
  const [net, bitsStr] = prefix.split('/');
  const bits = bitsStr === undefined ? 32 : Number(bitsStr);
  if (bits === 0) return false; // the default route: every address "matches", but it is not a subnet
  const toInt = (ip: string) => ip.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
  // Two prefixes overlap when they agree on the bits of the shorter one (ours is a /24).
  const mask = ~((1 << (32 - Math.min(bits, 24))) - 1) >>> 0;
  return (toInt(net) & mask) >>> 0 === (toInt(candidate) & mask) >>> 0;
}

/**
 * Chooses names and a free 10.x.y.0/24 for n hosts, derived from `seed` (the stack directory), so
 * two stacks of different TFOS_HOMEs never collide. Creates nothing.
 */
export async function planNetwork(seed: string, hostCount: number, routed?: string[]): Promise<NetworkPlan> {
  if (!Number.isInteger(hostCount) || hostCount < 2 || hostCount > HOST_NAMES.length) {
    throw new Error(`a stack network needs 2 to ${HOST_NAMES.length} hosts, got ${hostCount}`);
  }
  const hash = crypto.createHash('sha256').update(seed).digest();
  // Interface names are at most 15 characters: tf<id><role><i> stays well inside.
  const id = hash.subarray(0, 2).toString('hex');
  routed ??= await routedPrefixes();
  for (let attempt = 0; attempt < 64; attempt++) {
    const second = 200 + ((hash[2] + attempt) % 50);
    const third = (hash[3] + attempt * 7) % 256;
    const base = `10.${second}.${third}`;
    if (routed.some((p) => overlaps(p, `${base}.0`))) continue;
    return {
      id,
      bridge: `tf${id}br`,
      gateway: `${base}.1`,
      subnet: `${base}.0/24`,
      hosts: Array.from({ length: hostCount }, (_, i) => ({
        name: HOST_NAMES[i],
        netns: `tfos-${id}-${HOST_NAMES[i]}`,
        address: `${base}.${11 + i}`,
        hostLink: `tf${id}h${i}`,
      })),
    };
  }
  throw new Error('no free 10.x.y.0/24 for the stack network: every candidate overlaps an existing route');
}

async function ip(step: string, object: string, args: string[]): Promise<void> {
  try {
    await run('ip', args, { timeoutMs: 15_000 });
  } catch (err) {
    throw new NetworkError(step, object, err);
  }
}

/** Creates the bridge and every host. On failure removes what it made and rethrows. */
export async function createNetwork(plan: NetworkPlan): Promise<void> {
  try {
    await ip('creating bridge', plan.bridge, ['link', 'add', plan.bridge, 'type', 'bridge']);
    await ip('addressing bridge', plan.bridge, ['addr', 'add', `${plan.gateway}/24`, 'dev', plan.bridge]);
    await ip('raising bridge', plan.bridge, ['link', 'set', plan.bridge, 'up']);
    for (const [i, h] of plan.hosts.entries()) {
      const inner = `tf${plan.id}n${i}`;
      await ip('creating namespace', h.netns, ['netns', 'add', h.netns]);
      await ip('creating veth pair', h.hostLink, ['link', 'add', h.hostLink, 'type', 'veth', 'peer', 'name', inner]);
      await ip('moving veth into', h.netns, ['link', 'set', inner, 'netns', h.netns]);
      await ip('attaching to bridge', h.hostLink, ['link', 'set', h.hostLink, 'master', plan.bridge, 'up']);
      const inNs = (args: string[]) => ['netns', 'exec', h.netns, 'ip', ...args];
      await ip('raising loopback in', h.netns, inNs(['link', 'set', 'lo', 'up']));
      await ip('renaming interface in', h.netns, inNs(['link', 'set', inner, 'name', 'eth0']));
      // Only the /24 on eth0: no default route, so nothing outside the subnet is reachable.
      await ip('addressing', h.netns, inNs(['addr', 'add', `${h.address}/24`, 'dev', 'eth0']));
      await ip('raising eth0 in', h.netns, inNs(['link', 'set', 'eth0', 'up']));
    }
  } catch (err) {
    await destroyNetwork(plan);
    throw err;
  }
}

/** Pids of every process whose network namespace is the host's. */
export async function namespacePids(netns: string): Promise<number[]> {
  const res = await runAllowingFailure('ip', ['netns', 'pids', netns], { timeoutMs: 10_000 });
  if (res.code !== 0) return [];
  return res.stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => n > 0);
}

/**
 * Removes everything of the plan that exists: kills any process still inside a namespace (the
 * services were stopped before; this catches strays), deletes namespaces (which destroys their
 * veth ends and so the pairs), the root ends if any survived, and the bridge. Idempotent.
 */
export async function destroyNetwork(plan: NetworkPlan): Promise<void> {
  const problems: string[] = [];
  for (const h of plan.hosts) {
    let pids = await namespacePids(h.netns);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const deadline = Date.now() + 5000;
    while (pids.some(isAlive) && Date.now() < deadline) await sleep(100);
    pids = pids.filter(isAlive);
    if (pids.length) problems.push(`processes ${pids.join(', ')} survived in ${h.netns}`);
    const del = await runAllowingFailure('ip', ['netns', 'del', h.netns], { timeoutMs: 15_000 });
    if (del.code !== 0 && !/No such file|not found|Cannot remove namespace file/i.test(del.stderr))
      problems.push(`ip netns del ${h.netns}: ${del.stderr.trim()}`);
    await runAllowingFailure('ip', ['link', 'del', h.hostLink], { timeoutMs: 15_000 });
  }
  await runAllowingFailure('ip', ['link', 'del', plan.bridge], { timeoutMs: 15_000 });
  const left = await leftovers(plan);
  if (left.length) problems.push(`still present: ${left.join(', ')}`);
  if (problems.length) throw new Error(`could not remove the stack network ${plan.subnet}: ${problems.join('; ')}`);
}

/** Names of the plan's namespaces and links that still exist (empty once destroyed). */
export async function leftovers(plan: NetworkPlan): Promise<string[]> {
  const ns = await runAllowingFailure('ip', ['netns', 'list'], { timeoutMs: 10_000 });
  const links = await runAllowingFailure('ip', ['-o', 'link', 'show'], { timeoutMs: 10_000 });
  const nsNames = new Set(ns.stdout.split('\n').map((l) => l.split(' ')[0]));
  const linkNames = new Set(links.stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0]));
  return [
    ...plan.hosts.map((h) => h.netns).filter((n) => nsNames.has(n)),
    ...[plan.bridge, ...plan.hosts.map((h) => h.hostLink)].filter((l) => linkNames.has(l)),
  ];
}

/** Cuts (or restores) a host's network: its veth end on the bridge goes down (or up). */
export async function setHostLink(host: NetworkHost, up: boolean): Promise<void> {
  await ip(up ? 'restoring link of' : 'cutting link of', host.name, ['link', 'set', host.hostLink, up ? 'up' : 'down']);
}

/** argv that runs `command args` inside a host's namespace (ip execs in place: same pid). */
export function inNamespace(netns: string | undefined, command: string, args: string[]): { command: string; args: string[] } {
  return netns ? { command: 'ip', args: ['netns', 'exec', netns, command, ...args] } : { command, args };
}
