/**
 * What a trainer process holds besides the user's ctx: its control connection to the driver, the
 * listening socket of its cluster server, and the shutdown signal. Reached from a ctx through a
 * symbol so the user-facing ctx stays a plain object of TFoS's fields.
 */
import type * as net from 'node:net';
import type { NodeContext } from '../protocol/control';
import type { NodeControl } from './control-client';
import type { FeedServer } from './feed-server';
import type { FeedAnnouncement } from './spark-feed';

export const RUNTIME = Symbol.for('tfjs-on-spark.runtime');

export interface NodeRuntime {
  control: NodeControl;
  /** Listening socket whose host:port is this node's entry in the cluster spec. */
  listener: net.Server;
  host: string;
  port: number;
  /** Resolves when the driver tells this node to stop (ps nodes wait on it in server.join()). */
  shutdown: Promise<string>;
  secret: string;
  /** Where Spark's feeding tasks connect (InputMode.SPARK). */
  feedServer: FeedServer;
  /** Feeds the driver announced, in order; TFNode.dataFeed takes the next one. null: none will come. */
  nextFeed(): Promise<FeedAnnouncement | null>;
  /** Errors of feeds that failed on the Spark side, by feed id. */
  feedErrors: Map<string, string>;
}

/** The ctx handed to the user's function: TFoS's fields plus absolutePath(). */
export interface TFNodeContext extends NodeContext {
  /** TFoS's hdfs_path: a relative path resolved against defaultFS and the working directory. */
  absolutePath(p: string): string;
  [RUNTIME]: NodeRuntime;
}

export function runtimeOf(ctx: TFNodeContext): NodeRuntime {
  const rt = ctx?.[RUNTIME];
  if (!rt) throw new Error('this ctx does not come from a tfjs-on-spark trainer (pass the ctx your function received)');
  return rt;
}

export function absolutePath(ctx: Pick<NodeContext, 'defaultFS' | 'workingDir'>, p: string, user = process.env.USER ?? 'root'): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p)) return p;
  const fsUri = ctx.defaultFS.replace(/\/+$/, '');
  if (fsUri.startsWith('file:')) {
    const base = p.startsWith('/') ? p : `${ctx.workingDir.replace(/\/+$/, '')}/${p}`;
    return `file://${base}`;
  }
  if (p.startsWith('/')) return `${fsUri}${p}`;
  return `${fsUri}/user/${user}/${p}`;
}
