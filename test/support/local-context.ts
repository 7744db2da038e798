/**
 * Builds a trainer-like ctx for a node outside a Spark cluster (tests, benchmarks, in-process
 * clusters): the listener, secret and shutdown signal that trainer-main would provide, and a
 * control connection that does nothing.
 */
import type * as net from 'node:net';
import type { ClusterSpec, JobName, NodeContext } from '../../lib/protocol/control';
import { InputMode } from '../../lib/protocol/input-mode';
import type { NodeControl } from '../../lib/node/control-client';
import { absolutePath, NodeRuntime, RUNTIME, TFNodeContext } from '../../lib/node/runtime';
import { psOf, workersOf } from '../../lib/node/distributed/peers';

export interface LocalNodeSpec {
  clusterSpec: ClusterSpec;
  jobName: JobName;
  taskIndex: number;
  /** Listening socket at this node's address in the spec. */
  listener: net.Server;
  secret: string;
  /** Resolves when the node should stop (server.join() returns). Default: never. */
  shutdown?: Promise<string>;
  clusterId?: string;
  args?: unknown;
}

export function localContext(o: LocalNodeSpec): TFNodeContext {
  const spec = o.clusterSpec;
  const workers = workersOf(spec);
  const me = workers.find((w) => w.job === o.jobName && w.index === o.taskIndex);
  const ordered = [...psOf(spec), ...workers];
  const nodeIndex = Math.max(
    0,
    ordered.findIndex((p) => p.job === o.jobName && p.index === o.taskIndex),
  );
  const addr = o.listener.address() as net.AddressInfo;
  const nodeCtx: NodeContext = {
    clusterId: o.clusterId ?? 'local',
    jobName: o.jobName,
    taskIndex: o.taskIndex,
    clusterSpec: spec,
    numWorkers: workers.length,
    executorId: String(nodeIndex),
    workerNum: me ? me.rank : -1,
    nodeIndex,
    defaultFS: 'file://',
    workingDir: process.cwd(),
    inputMode: InputMode.TENSORFLOW,
    module: '',
    fn: 'default',
    args: o.args ?? null,
  };
  const control = { send: async () => undefined, close: async () => undefined, on: () => control } as unknown as NodeControl;
  // Only what the distributed layer uses; other parts of the runtime (data feeds) are absent.
  const runtime = {
    control,
    listener: o.listener,
    host: addr.address,
    port: addr.port,
    shutdown: o.shutdown ?? new Promise<string>(() => undefined),
    secret: o.secret,
    feedErrors: new Map<string, string>(),
    nextFeed: () => new Promise(() => undefined),
  } as unknown as NodeRuntime;
  return { ...nodeCtx, absolutePath: (p: string) => absolutePath(nodeCtx, p), [RUNTIME]: runtime };
}
