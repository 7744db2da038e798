/**
 * The distributed side of a node's cluster server: owns the node's shared listener (every
 * connection starts with a HELLO naming its channel), the collective group of workers, the
 * parameter-server service on ps nodes, and the ps client on workers. Those three see the node
 * only as a PeerGroup (./group.ts), so they do not depend on this file.
 */
import type * as net from 'node:net';
import type { ClusterSpec, JobName } from '../../protocol/control';
import { acceptConnection, DialOptions, Hello } from './auth';
import { Collectives, ReduceOp } from './collectives';
import { DistributedOptions, PeerGroup, ResolvedOptions, resolveOptions } from './group';
import { DistributedError, findPeer, peerName, PeerId, psOf, workersOf } from './peers';
import { PsClient, PsService } from './ps';
import { Channel, ChannelCode } from './wire';

export interface NodeIdentity {
  jobName: JobName;
  taskIndex: number;
  clusterSpec: ClusterSpec;
}

export interface NodeTransport {
  listener: net.Server;
  secret: string;
}

export class DistributedNode implements PeerGroup {
  readonly self: PeerId;
  readonly selfName: string;
  readonly workers: PeerId[];
  readonly psNodes: PeerId[];
  readonly opts: ResolvedOptions;
  readonly spec: ClusterSpec;
  private collectivesImpl?: Collectives;
  private psServiceImpl?: PsService;
  private psClientImpl?: PsClient;
  closedError?: DistributedError;
  private closing?: Promise<void>;
  private readonly onConnection = (sock: net.Socket) => this.accept(sock);

  constructor(
    id: NodeIdentity,
    private readonly transport: NodeTransport,
    opts: DistributedOptions = {},
  ) {
    this.opts = resolveOptions(opts);
    this.spec = id.clusterSpec;
    this.workers = workersOf(id.clusterSpec);
    this.psNodes = psOf(id.clusterSpec);
    const self = findPeer(id.clusterSpec, id.jobName, id.taskIndex);
    if (!self) throw new Error(`${id.jobName}:${id.taskIndex} is not in the cluster spec ${JSON.stringify(id.clusterSpec)}`);
    this.self = self;
    this.selfName = peerName(self);
    if (self.rank >= 0) this.collectivesImpl = new Collectives(this);
    if (self.job === 'ps') this.psServiceImpl = new PsService(this);
    transport.listener.on('connection', this.onConnection);
  }

  get secret(): string {
    return this.transport.secret;
  }

  /** Rank among the workers (chief 0, then workers); -1 on ps / evaluator nodes. */
  get rank(): number {
    return this.self.rank;
  }

  /** Number of workers in collectives (chief + workers). */
  get size(): number {
    return this.workers.length;
  }

  get collectives(): Collectives {
    if (!this.collectivesImpl)
      throw new DistributedError(`${this.selfName} is not a worker: only chief and worker nodes take part in collectives`);
    return this.collectivesImpl;
  }

  get psService(): PsService | undefined {
    return this.psServiceImpl;
  }

  /** Client of the ps nodes (workers only). */
  get ps(): PsClient {
    if (this.self.rank < 0)
      throw new DistributedError(`${this.selfName} is not a worker: only chief and worker nodes use the parameter servers`);
    if (!this.psNodes.length) throw new DistributedError('the cluster has no ps nodes (TFCluster.run numPs)');
    this.psClientImpl ??= new PsClient(this);
    return this.psClientImpl;
  }

  allReduce(buf: Float32Array, op: ReduceOp = 'sum'): Promise<Float32Array> {
    return this.collectives.allReduce(buf, op);
  }

  broadcast(buf: Float32Array, root = 0): Promise<Float32Array> {
    return this.collectives.broadcast(buf, root);
  }

  barrier(): Promise<void> {
    return this.collectives.barrier();
  }

  /** Local work during which peers waiting in collectives do not time out (Collectives.whileBusy). */
  whileBusy<T>(work: () => Promise<T> | T): Promise<T> {
    return this.collectivesImpl ? this.collectivesImpl.whileBusy(work) : Promise.resolve().then(work);
  }

  dialOptions(channel: ChannelCode, target: PeerId): DialOptions {
    return {
      secret: this.transport.secret,
      channel,
      self: { job: this.self.job, index: this.self.index },
      target,
      stepTimeoutMs: Math.min(this.opts.timeoutMs, 5000),
    };
  }

  private accept(sock: net.Socket): void {
    if (this.closedError) {
      sock.destroy();
      return;
    }
    const resolvePeer = (h: Hello) => findPeer(this.spec, h.from.job, h.from.index);
    acceptConnection(sock, {
      secret: this.transport.secret,
      self: this.self,
      stepTimeoutMs: Math.min(this.opts.timeoutMs, 10_000),
      validate: (h) => {
        if (h.to.job !== this.self.job || h.to.index !== this.self.index) return `this is ${this.selfName}, not ${h.to.job}:${h.to.index}`;
        const peer = resolvePeer(h);
        if (!peer) return `${h.from.job}:${h.from.index} is not in this cluster`;
        if (h.channel === Channel.COLLECTIVE) {
          if (this.self.rank < 0 || peer.rank < 0) return 'collectives are only between chief and worker nodes';
          return undefined;
        }
        if (h.channel === Channel.PS) {
          if (this.self.job !== 'ps') return `${this.selfName} is not a ps node`;
          if (peer.rank < 0) return 'only chief and worker nodes use the parameter servers';
          return undefined;
        }
        return `unknown channel ${h.channel}`;
      },
      onAuthFailure: (h, why) => {
        // Logged and ignored: a stranger claiming a peer's name must not break the group.
        const remote = `${sock.remoteAddress}:${sock.remotePort}`;
        this.opts.log(`tfos: ${this.selfName}: ignored a connection from ${remote} claiming to be ${h.from.job}:${h.from.index}: ${why}`);
        const peer = resolvePeer(h);
        if (peer && h.channel === Channel.COLLECTIVE && this.collectivesImpl) this.collectivesImpl.authFailed(peer, why);
      },
      adopt: (h, est) => {
        const peer = resolvePeer(h)!;
        if (this.closedError) {
          est.socket.destroy();
          return;
        }
        if (h.channel === Channel.COLLECTIVE) this.collectives.adoptIncoming(peer, est);
        else this.psServiceImpl!.adopt(peer, est);
      },
    });
  }

  /**
   * Closes every connection (peers see a goodbye, after all queued data) and stops serving;
   * idempotent. Resolves once the peers closed their side too (at most ~2 s).
   */
  close(reason = 'the cluster server was closed'): Promise<void> {
    if (!this.closing) {
      this.closedError = new DistributedError(`${this.selfName}: ${reason}`);
      this.transport.listener.off('connection', this.onConnection);
      this.closing = Promise.all([
        this.collectivesImpl?.close(this.closedError),
        this.psClientImpl?.close(this.closedError),
        this.psServiceImpl?.close(this.closedError),
      ]).then(() => undefined);
    }
    return this.closing;
  }
}
