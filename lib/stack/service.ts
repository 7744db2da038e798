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
  /** TCP ports on 127.0.0.1 the service binds; checked free before start, named in errors. */
  ports: number[];
  /** Resolves true once the service answers (HTTP probe, RPC port open, worker registered...). */
  healthy(): Promise<boolean>;
  /** How long to wait for healthy() after start before failing with the log tail. */
  startTimeoutMs: number;
}
