/**
 * Entry point of a trainer process, started by the node task on a Spark executor
 * (spark-jobs/tfos_launcher.py). Phases:
 *   1. read the cluster secret from stdin; open this node's cluster-server socket;
 *   2. register with the driver (node index, attempt, executor, host:port, pid);
 *   3. receive the cluster spec and this node's ctx once every node has registered;
 *   4. run the user's function(args, ctx); report its result or error; exit.
 * The trainer exits when the driver's connection drops, so a killed driver leaves no trainers.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { guardListener } from '../platform/preauth';
import { DriverToNode, NodeContext, NodeStartupAges, PROTOCOL_VERSION } from '../protocol/control';
import { NodeControl } from './control-client';
import { FeedServer } from './feed-server';
import { FeedAnnouncement } from './spark-feed';
import { absolutePath, NodeRuntime, RUNTIME, TFNodeContext } from './runtime';
import { registerNativeKernelsOnLoad } from '../tfjs-native/auto';
import { installEsmHooks, installUserModuleHooks } from './user-modules';
import { describeBackend } from './backend-report';

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`trainer started without ${name} in its environment`);
  return v;
}

async function readSecret(): Promise<string> {
  let data = '';
  for await (const chunk of process.stdin) {
    data += chunk;
    if (data.includes('\n')) break;
  }
  const secret = data.split('\n')[0].trim();
  if (!secret) throw new Error('no cluster secret on stdin');
  return secret;
}

/** The local address this machine uses to reach the driver: what peers should dial. */
function localAddressTowards(controlUrl: string): Promise<string> {
  const override = process.env.TFOS_NODE_HOST;
  if (override) return Promise.resolve(override);
  const { hostname, port } = new URL(controlUrl);
  const host = hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    sock.once('error', () => {
      sock.close();
      resolve('127.0.0.1');
    });
    // connect() on UDP sends nothing; it only picks the route and so the local address.
    sock.connect(Number(port) || 80, host, () => {
      const addr = sock.address().address;
      sock.close();
      resolve(addr);
    });
  });
}

function listen(host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    // Open from now on, but served only from startClusterServer: until then (and for strangers
    // always) a connection is closed unless it authenticates within the pre-auth bound.
    // (A peer that dials before this node serves is retried by the peer: no log line for that.)
    guardListener(server, {
      onReject: (why, remote) => {
        if (!why.startsWith('no proof')) console.error(`tfos: cluster-server port: closed a connection from ${remote}: ${why}`);
      },
    });
    const port = Number(process.env.TFOS_NODE_PORT ?? 0);
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `node ${process.env.TFOS_NODE_INDEX ?? '?'}: cannot listen on ${host}:${port} for its cluster server: ${err.code === 'EADDRINUSE' ? 'the port is taken (TFOS_NODE_PORT)' : err.message}`,
        ),
      ),
    );
    server.listen({ host, port: Number(process.env.TFOS_NODE_PORT ?? 0) }, () => resolve(server));
  });
}

type UserFn = (args: unknown, ctx: TFNodeContext) => unknown;

/** Loads the user's module (CommonJS or ESM) and picks the function by name, or its default. */
export async function loadUserFunction(modulePath: string, fnName: string): Promise<UserFn> {
  const resolved = path.resolve(modulePath);
  // .ts modules, and one tfjs-on-spark / one tfjs engine for modules anywhere (user-modules.ts).
  installUserModuleHooks();
  let mod: Record<string, unknown>;
  try {
    mod = require(resolved);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_REQUIRE_ASYNC_MODULE' && !resolved.endsWith('.mjs')) throw err;
    installEsmHooks();
    // A string-built import() keeps tsc from rewriting it into require().
    const importer = new Function('u', 'return import(u)') as (u: string) => Promise<Record<string, unknown>>;
    mod = await importer(pathToFileURL(resolved).href);
  }
  const pick = (m: Record<string, unknown> | undefined, name: string): unknown => (m ? m[name] : undefined);
  let fn: unknown;
  if (fnName === 'default') {
    fn = typeof mod === 'function' ? mod : pick(mod, 'default');
    if (fn && typeof fn === 'object') fn = pick(fn as Record<string, unknown>, 'default');
  } else {
    fn = pick(mod, fnName) ?? pick(pick(mod, 'default') as Record<string, unknown>, fnName);
  }
  if (typeof fn !== 'function') {
    const names = Object.keys(mod ?? {}).join(', ') || '(none)';
    throw new Error(`module ${resolved} has no function '${fnName}' (exports: ${names})`);
  }
  return fn as UserFn;
}

/** Start-up ages (ms) of this trainer's phases at `now`, from the node task's timestamps (same host clock). */
export function startupAges(env: NodeJS.ProcessEnv, loadedAt: number, now = Date.now()): NodeStartupAges {
  const ago = (name: string): number | undefined => {
    const at = Number(env[name]);
    return env[name] && Number.isFinite(at) ? Math.max(0, now - at) : undefined;
  };
  return {
    pythonWorker: ago('TFOS_PYTHON_STARTED_MS'),
    task: ago('TFOS_TASK_STARTED_MS'),
    trainer: Math.max(0, now - performance.timeOrigin),
    loaded: Math.max(0, now - loadedAt),
  };
}

async function main(): Promise<number> {
  // Every module above is loaded by now: the 'trainer-loaded' phase.
  const loadedAt = Date.now();
  // One tfjs engine (and with TFOS_TFJS=gpu the GPU build) for everything this process loads.
  installUserModuleHooks();
  // The user's function loads tfjs-node; TensorFlow's fused kernels come with it, and the trainer
  // says which backend and devices it got.
  registerNativeKernelsOnLoad((tf) => {
    try {
      console.log(describeBackend(tf));
    } catch (err) {
      console.error(`tfos: backend not reported: ${(err as Error).message}`);
    }
  });
  const secret = await readSecret();
  const controlUrl = env('TFOS_CONTROL_URL');
  const nodeIndex = Number(env('TFOS_NODE_INDEX'));
  const attempt = Number(process.env.TFOS_ATTEMPT ?? 0);
  const executorId = process.env.TFOS_EXECUTOR_ID ?? String(nodeIndex);

  const host = await localAddressTowards(controlUrl);
  const listener = await listen(host);
  const port = (listener.address() as net.AddressInfo).port;
  const feedServer = new FeedServer(secret, (err) => console.error(`tfos: ${err.message}`));
  const dataPort = await feedServer.listen(host);
  const control = await NodeControl.connect(controlUrl, secret);
  // Feeds announced by the driver, handed out in order by TFNode.dataFeed(ctx).
  const announced: FeedAnnouncement[] = [];
  const feedWaiters: Array<(f: FeedAnnouncement | null) => void> = [];
  let feedsClosed = false;
  const feedErrors = new Map<string, string>();

  let finished = false;
  let resolveShutdown!: (reason: string) => void;
  const shutdown = new Promise<string>((r) => (resolveShutdown = r));
  control.on('close', () => {
    if (finished) return;
    // The driver is gone: nobody will collect results, and leaving trainers behind is worse.
    console.error(`tfos: lost the connection to the driver at ${controlUrl}; exiting`);
    process.exit(3);
  });

  const ctxPromise = new Promise<NodeContext>((resolve) => {
    control.on('message', (msg: DriverToNode) => {
      if (msg.type === 'cluster') resolve(msg.ctx);
      else if (msg.type === 'feed') {
        const f = { feedId: msg.feedId, kind: msg.kind, epochs: msg.epochs };
        const waiter = feedWaiters.shift();
        if (waiter) waiter(f);
        else announced.push(f);
      } else if (msg.type === 'no-more-feeds') {
        feedsClosed = true;
        for (const waiter of feedWaiters.splice(0)) waiter(null);
      } else if (msg.type === 'feed-failed') {
        feedErrors.set(msg.feedId, msg.error);
        feedServer.fail(msg.feedId, msg.error);
      } else if (msg.type === 'shutdown') {
        resolveShutdown(msg.reason);
        // ps/evaluator nodes return from server.join() and finish their closing work within the
        // grace the driver gives (TFCluster.run shutdownGrace; 3 s after a failure); a function
        // still running then is cut off, so no trainer outlives its cluster.
        const graceSec = msg.graceSec ?? 3;
        setTimeout(() => {
          if (!finished) {
            console.error(
              `tfos: cluster stopped (${msg.reason}) and this node's function was still running ${graceSec} s later; exiting` +
                (msg.graceSec ? ' (TFCluster.run shutdownGrace / tfos run --shutdown-grace gives it longer)' : ''),
            );
            process.exit(4);
          }
        }, graceSec * 1000).unref();
      }
    });
  });
  await control.send({
    type: 'register',
    protocol: PROTOCOL_VERSION,
    nodeIndex,
    attempt,
    executorId,
    host,
    port,
    dataPort,
    pid: process.pid,
    startup: startupAges(process.env, loadedAt),
  });
  // The driver sends the ctx once every node registered; it fails the reservation itself after
  // its timeout, but a trainer must not wait forever on a driver that never says so.
  const ctxTimeoutSec = Number(process.env.TFOS_CTX_TIMEOUT_SEC ?? 600);
  let ctxTimer: NodeJS.Timeout | undefined;
  const nodeCtx = await Promise.race([
    ctxPromise,
    new Promise<never>((_, reject) => {
      ctxTimer = setTimeout(
        () =>
          reject(
            new Error(
              `node ${nodeIndex}: registered with the driver at ${controlUrl} but got no cluster spec within ${ctxTimeoutSec} s (the other nodes never all registered)`,
            ),
          ),
        ctxTimeoutSec * 1000,
      );
    }),
  ]).finally(() => clearTimeout(ctxTimer));

  const runtime: NodeRuntime = {
    control,
    listener,
    host,
    port,
    shutdown,
    secret,
    feedServer,
    feedErrors,
    nextFeed: () => {
      const f = announced.shift();
      if (f) return Promise.resolve(f);
      return feedsClosed ? Promise.resolve(null) : new Promise((r) => feedWaiters.push(r));
    },
  };
  const ctx: TFNodeContext = {
    ...nodeCtx,
    absolutePath: (p: string) => absolutePath(nodeCtx, p),
    [RUNTIME]: runtime,
  };
  // A relative module path (e.g. inside a shipped archive) is relative to the executor's directory.
  const modulePath = path.resolve(nodeCtx.module);
  try {
    if (nodeCtx.workingDir) process.chdir(nodeCtx.workingDir);
  } catch {
    /* the executor's own directory is fine too */
  }
  try {
    const fn = await loadUserFunction(modulePath, nodeCtx.fn);
    const value = await fn(nodeCtx.args, ctx);
    // Peers may still be reading this node's last collective: say goodbye before exiting.
    // (TFNode is loaded here, not at start: with its data feeds it pulls in apache-arrow.)
    const { closeClusterServerOf } = await import('./tf-node');
    await closeClusterServerOf(ctx);
    await control.send({ type: 'result', value: value === undefined ? null : toJsonSafe(value) });
    finished = true;
    await control.close();
    return 0;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    console.error(e.stack ?? e.message);
    finished = true;
    await control.send({ type: 'error', message: e.message, stack: e.stack }).catch(() => undefined);
    await control.close();
    return 1;
  } finally {
    listener.close();
    feedServer.close();
  }
}

function toJsonSafe(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value));
  } catch {
    return String(value);
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(`tfos trainer failed: ${err.stack ?? err.message}`);
      process.exit(1);
    },
  );
}
