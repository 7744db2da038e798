/**
 * A long-running local service of `tfos stack` (Spark master/worker, NameNode, DataNode, Livy),
 * described as data so one place (stack.ts) starts, probes, records and stops them all alike.
 */
export interface ServiceSpec {
  /** Unique name; also the log file name: <logs>/<name>.log */
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** TCP ports the service binds; checked free before start (on loopback, when not in a netns), named in errors. */
  ports: number[];
  /** Network namespace to run in (a host of `tfos stack up --hosts N`); absent: this machine's. */
  netns?: string;
  /** Resolves true once the service answers (HTTP probe, RPC port open, worker registered...). */
  healthy(): Promise<boolean>;
  /** How long to wait for healthy() after start before failing with the log tail. */
  startTimeoutMs: number;
  /** Names of services that must be healthy before this one starts; the others start side by side. */
  startsAfter?: string[];
}

/** Where a service runs: the address it binds and advertises, and its host's namespace if any. */
export interface Placement {
  address: string;
  netns?: string;
}

export const LOOPBACK: Placement = { address: '127.0.0.1' };
