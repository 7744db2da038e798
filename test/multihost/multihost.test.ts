/**
 * Beyond one machine: TF clusters on `tfos stack up --hosts 3` — host a runs the Spark master,
 * NameNode and Livy, hosts b and c a Spark worker and a DataNode each, every host its own network
 * namespace on a private bridge; the driver (this process) stays in the root namespace. Nothing
 * here may assume loopback: nodes register with their hosts' addresses, WebHDFS redirects to the
 * worker hosts' DataNodes, executors reach the driver through the bridge.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { TFClusterHandle } from '../../lib/driver/cluster';
import { WebHdfsClient } from '../../lib/io/webhdfs';
import { InputMode } from '../../lib/protocol/input-mode';
import { run, runAllowingFailure } from '../../lib/platform/exec';
import { planNetwork } from '../../lib/stack/netns';
import { setStackHostLink, stackUp } from '../../lib/stack/stack';
import { tempDir } from '../support/cifar-fixture';
import { CIFAR_RECORDS, cifarOnStack, linkedHome, MultiHostStack, multiHostStack, networkLeftovers } from '../support/multihost';
import { readParquet } from '../support/parquet-fixture';
import { skipBecause } from '../support/skip';

const ROOT = path.resolve(__dirname, '../../..');
const ALLREDUCE = path.join(ROOT, 'test/fixtures/distributed/allreduce-module.js');
const REPORT = path.join(ROOT, 'test/fixtures/modules/report-context.js');
const SLEEPS = path.join(ROOT, 'test/fixtures/modules/sleeps.js');
const CIFAR_COUNT = path.join(ROOT, 'test/fixtures/multihost/cifar-count.js');

function hostOf(url: string): string {
  return new URL(url.replace(/^(spark|hdfs):/, 'http:')).hostname;
}

describe('multi-host stack: N network namespaces on one machine', function () {
  this.timeout(600_000);
  let mh: MultiHostStack;
  let workerAddresses: string[];
  const master = () => mh.status.spark.master;

  before(function () {
    const s = multiHostStack();
    if (!s) return skipBecause(this, 'network namespaces cannot be made here (needs root and iproute2)');
    mh = s;
    workerAddresses = mh.status.hosts!.filter((h) => h.roles.includes('spark-worker')).map((h) => h.address);
  });

  it('status lists every host with its address and roles; the services listen on host a', () => {
    const { hosts, network } = mh.status;
    // (a stack started with --yarn adds resourcemanager / nodemanager)
    const core = (roles: string[]) => roles.filter((r) => r !== 'resourcemanager' && r !== 'nodemanager');
    expect(hosts!.map((h) => [h.name, core(h.roles)])).to.deep.equal([
      ['a', ['spark-master', 'namenode', 'livy']],
      ['b', ['spark-worker', 'datanode']],
      ['c', ['spark-worker', 'datanode']],
    ]);
    const prefix = network!.subnet.replace(/\.0\/24$/, '.');
    for (const h of hosts!) expect(h.address.startsWith(prefix)).to.equal(true);
    const a = hosts![0].address;
    expect([
      hostOf(mh.status.spark.master),
      hostOf(mh.status.hdfs.defaultFS),
      hostOf(mh.status.hdfs.webhdfs),
      hostOf(mh.status.livy.url),
    ]).to.deep.equal([a, a, a, a]);
    expect(mh.status.spark.workers).to.equal(2);
  });

  it('is isolated: no host has a default route, and only the hosts are attached to the bridge', async () => {
    const { hosts, network } = mh.status;
    for (const h of hosts!) {
      const routes = await run('ip', ['netns', 'exec', `tfos-${network!.id}-${h.name}`, 'ip', '-4', 'route', 'show', 'table', 'all']);
      expect(routes.stdout, `routes of host ${h.name}`).not.to.match(/^default/m);
    }
    const ports = await run('ip', ['-o', 'link', 'show', 'master', network!.bridge]);
    const attached = ports.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':')[1].trim().split('@')[0]);
    expect(attached.sort()).to.deep.equal(hosts!.map((_, i) => `tf${network!.id}h${i}`).sort());
  });

  it("spark-submit: 3 nodes with 1 ps register with their worker hosts' addresses; all-reduce and ps training run across hosts", async () => {
    const size = 100_003;
    const handle = await TFCluster.run({
      module: ALLREDUCE,
      numExecutors: 3,
      numPs: 1,
      args: { size },
      via: { sparkSubmit: { master: master() } },
      reservationTimeout: 240,
    });
    const hosts = [...handle.nodes.values()].map((n) => n.host);
    const results = (await handle.shutdown({ timeout: 180 })) as Map<
      number,
      { jobName: string; rank: number; sum: number[]; mean: number; psWeights: number[] }
    >;
    for (const h of hosts) expect(workerAddresses, `node host ${h}`).to.include(h);
    // Spark spreads the three executors over both worker hosts.
    expect(new Set(hosts).size).to.equal(2);
    const workers = [...results.values()].filter((r) => r.jobName !== 'ps');
    expect(workers).to.have.length(2);
    for (const w of workers) {
      expect(w.sum).to.deep.equal([0, 3, 297, 3 * ((size - 1) % 100)]);
      expect(w.mean).to.equal(5);
      expect(w.psWeights.map((v) => +v.toFixed(5))).to.deep.equal([-0.3, -0.6, -0.9]);
    }
  });

  it("Livy batch on host a (submitting to YARN when the stack has it): the cluster spec carries every node's own host address", async () => {
    const handle = await TFCluster.run({
      module: REPORT,
      numExecutors: 3,
      numPs: 1,
      args: ['via-livy'],
      via: { livy: { url: mh.status.livy.url } },
      reservationTimeout: 240,
    });
    const results = [...(await handle.shutdown({ timeout: 180 })).values()] as Array<{
      jobName: string;
      clusterSpec: Record<string, string[]>;
    }>;
    const spec = results.find((r) => r.jobName === 'chief')!.clusterSpec;
    const addresses = Object.values(spec).flat();
    expect(addresses).to.have.length(3);
    for (const a of addresses) expect(workerAddresses).to.include(a.replace(/:\d+$/, ''));
  });

  describe("CIFAR-10 on the hosts' HDFS, fed in both input modes", () => {
    const RECORDS = CIFAR_RECORDS.train;
    const TEST_RECORDS = CIFAR_RECORDS.test;
    let data: string;
    let webhdfs: WebHdfsClient;

    before(async function () {
      if (!mh) return skipBecause(this, 'no multi-host stack (see the skip above)');
      data = await cifarOnStack(mh);
      webhdfs = new WebHdfsClient({ url: mh.status.hdfs.webhdfs });
    });

    function allIds(results: Map<number, unknown>): number[] {
      return [...results.values()].filter(Boolean).flatMap((r) => (r as { ids: number[] }).ids);
    }

    function expectExactlyOnce(ids: number[], n: number): void {
      expect(ids).to.have.length(n);
      expect(new Set(ids).size).to.equal(n);
    }

    it('InputMode.TENSORFLOW: trainers on hosts b and c read every record exactly once over WebHDFS', async () => {
      const handle = await TFCluster.run({
        module: CIFAR_COUNT,
        numExecutors: 3,
        numPs: 1,
        inputMode: InputMode.TENSORFLOW,
        args: { path: `${data}/train` },
        webhdfs: mh.status.hdfs.webhdfs,
        via: { sparkSubmit: { master: master() } },
        reservationTimeout: 240,
      });
      expectExactlyOnce(allIds(await handle.shutdown({ timeout: 180 })), RECORDS);
    });

    it('InputMode.SPARK via Livy (to YARN when the stack has it): Spark feeds every record exactly once from HDFS, and inference writes one result per record', async () => {
      let handle: TFClusterHandle | undefined;
      try {
        handle = await TFCluster.run({
          module: CIFAR_COUNT,
          numExecutors: 2,
          inputMode: InputMode.SPARK,
          args: { infer: true },
          via: { livy: { url: mh.status.livy.url } },
          reservationTimeout: 240,
        });
        const epochs = await handle.train(`${data}/train`);
        expect(epochs[0].workers.reduce((a, w) => a + w.rows, 0)).to.equal(RECORDS);
        const output = `${mh.status.hdfs.defaultFS}/tfos-mh/predictions`;
        await webhdfs.delete('/tfos-mh/predictions', { recursive: true });
        await handle.inference(`${data}/test`, { output, resultSchema: 'prediction int' });
        expectExactlyOnce(allIds(await handle.shutdown({ timeout: 180 })), RECORDS);
        // Read the result back through WebHDFS (DataNodes on the worker hosts) and check it.
        const local = tempDir('tfos-mh-pred-');
        try {
          const parts = (await webhdfs.list('/tfos-mh/predictions')).filter((f) => f.pathSuffix.endsWith('.parquet'));
          expect(parts.length).to.be.above(0);
          for (const f of parts)
            fs.writeFileSync(path.join(local, f.pathSuffix), await webhdfs.readAll(`/tfos-mh/predictions/${f.pathSuffix}`));
          const rows = await readParquet(local, ['id', 'prediction']);
          expect(rows).to.have.length(TEST_RECORDS);
          expect(new Set(rows.map((r) => r.id)).size).to.equal(TEST_RECORDS);
        } finally {
          fs.rmSync(local, { recursive: true, force: true });
        }
      } finally {
        await handle?.kill().catch(() => undefined);
      }
    });
  });

  it('a worker host whose link is cut fails the run with an error naming that host (heartbeat bound 10 s)', async () => {
    const handle = await TFCluster.run({
      module: SLEEPS,
      numExecutors: 2,
      via: { sparkSubmit: { master: master() } },
      reservationTimeout: 240,
      heartbeatTimeout: 10,
    });
    const victim = [...handle.nodes.values()].find((n) => n.job === 'worker')!;
    const cutAt = Date.now();
    await setStackHostLink(victim.host, false, mh.env);
    try {
      const err = (await handle.shutdown({ timeout: 120 }).then(
        () => undefined,
        (e: Error) => e,
      )) as Error;
      expect(err, 'the run must fail').to.be.instanceOf(Error);
      expect(err.message).to.contain(`host ${victim.host}`);
      expect(err.message).to.match(/stopped answering/);
      console.log(`      (failed ${((Date.now() - cutAt) / 1000).toFixed(1)} s after the cut: ${err.message.split('\n')[0]})`);
    } finally {
      await setStackHostLink(victim.host, true, mh.env);
      await handle.kill().catch(() => undefined);
    }
  });

  it('a failed `stack up --hosts` removes everything it created and nothing else', async () => {
    const home = linkedHome();
    const env = { ...process.env, TFOS_HOME: home };
    const plan = await planNetwork(path.join(home, 'stack'), 3);
    // A link with the name host c's veth gets before it moves into c: creation fails half-way,
    // after the bridge, hosts a and b, and c's namespace exist.
    const blocker = `tf${plan.id}n2`;
    await run('ip', ['link', 'add', blocker, 'type', 'bridge']);
    try {
      const err = await stackUp({ hosts: 3, env }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).to.contain(plan.hosts[2].hostLink);
      expect(await networkLeftovers(plan.id)).to.deep.equal([blocker]);
      expect(fs.existsSync(path.join(home, 'stack', 'state.json'))).to.equal(false);
    } finally {
      await runAllowingFailure('ip', ['link', 'del', blocker]);
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
