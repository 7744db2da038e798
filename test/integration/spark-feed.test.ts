/**
 * InputMode.SPARK on a real Spark: cluster.train() streams every row exactly once per epoch to the
 * workers as Arrow batches; cluster.inference() writes one keyed result row per input row.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InputMode } from '../../lib/protocol/input-mode';
import { FEED_PHASES } from '../../lib/driver/phases';
import { RouteOption, TFCluster } from '../../lib/driver/tf-cluster';
import { readParquet, writeParquetDataset } from '../support/parquet-fixture';
import { SESSION_HEARTBEAT_SEC } from '../../lib/driver/routes/livy-route';
import { LivyClient } from '../../lib/io/livy-client';
import { closeTestSession, replClassDirs } from '../support/livy-session';
import { livySessionsOrWhyNot, requireStack } from '../support/stack';
import { skipBecause } from '../support/skip';
import { rejection } from '../support/rejection';

const consumer = path.resolve(__dirname, '../../../test/fixtures/modules/feed-consumer.js');
const ROWS = 1000;

interface Stats {
  rows: number;
  idSum: number;
  labelSum: number;
  byteSum: number;
  maxBatch: number;
}

/** layout: nodes and ps; a feed also needs one free task slot per worker beside the nodes. */
function feedSuite(name: string, via: () => RouteOption, layout = { nodes: 3, ps: 1 }) {
  describe(`InputMode.SPARK feeding via ${name}`, function () {
    this.timeout(300_000);
    let dir: string;
    let data: string;
    before(async function () {
      via(); // throws when the stack it needs is missing or unhealthy
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-feed-'));
      await writeParquetDataset(path.join(dir, 'data'), ROWS, 5);
      // A local dataset is named file://…: Spark resolves a bare path against fs.defaultFS, which is
      // the stack's HDFS wherever the stack is the default.
      data = `file://${path.join(dir, 'data')}`;
    });
    after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

    it('feeds every row exactly once per epoch (2 epochs, 2 workers) and writes keyed inference results', async () => {
      const handle = await TFCluster.run({
        module: consumer,
        numExecutors: layout.nodes,
        numPs: layout.ps,
        inputMode: InputMode.SPARK,
        args: ['infer2'],
        via: via(),
        reservationTimeout: 180,
      });
      try {
        const epochs = await handle.train(data, { epochs: 2 });
        expect(epochs).to.have.length(2);
        for (const e of epochs) expect(e.workers.reduce((a, w) => a + w.rows, 0)).to.equal(ROWS);
        const output = path.join(dir, 'predictions');
        await handle.inference(data, { output: `file://${output}`, resultSchema: 'prediction int' });
        // Replacing the output: the old copy goes only once the new one is in place; nothing nested, nothing left beside it.
        await handle.inference(data, { output: `file://${output}`, overwrite: true, resultSchema: 'prediction int' });
        expect(fs.readdirSync(output).filter((n) => n.startsWith('._tfos_'))).to.deep.equal([]);
        expect(fs.readdirSync(dir).filter((n) => n.startsWith('._tfos_'))).to.deep.equal([]);
        const stats = [...(await handle.shutdown({ timeout: 120 })).values()].filter(Boolean) as Stats[];
        expect(stats).to.have.length(2);
        // Each feed's start is reported phase by phase, in order, from both workers (no timings asserted).
        const feedIds = handle.phases.events.filter((e) => e.phase === 'feed-requested').map((e) => e.feedId!);
        expect(feedIds).to.have.length(3);
        for (const feedId of feedIds) {
          const phases = handle.phases.feed(feedId);
          expect(phases.map((p) => p.phase)).to.deep.equal([...FEED_PHASES]);
          expect(phases.map((p) => p.seconds)).to.deep.equal(phases.map((p) => p.seconds).sort((a, b) => a - b));
          const firsts = handle.phases.events.filter((e) => e.feedId === feedId && e.phase === 'first-batch');
          expect(new Set(firsts.map((e) => e.nodeIndex)).size).to.equal(2);
        }
        const total = (k: keyof Stats) => stats.reduce((a, s) => a + s[k], 0);
        const idSum = (ROWS * (ROWS - 1)) / 2;
        expect(total('rows')).to.equal(2 * ROWS);
        expect(total('idSum')).to.equal(2 * idSum);
        let labelSum = 0;
        let byteSum = 0;
        for (let i = 0; i < ROWS; i++) {
          labelSum += i % 10;
          byteSum += i % 251;
        }
        expect(total('labelSum')).to.equal(2 * labelSum);
        expect(total('byteSum')).to.equal(2 * byteSum);
        for (const s of stats) {
          expect(s.rows).to.be.above(0);
          expect(s.maxBatch).to.be.at.most(64);
        }
        const rows = await readParquet(output, ['id', 'prediction']);
        expect(rows).to.have.length(ROWS);
        const seen = new Set<number>();
        for (const r of rows) {
          expect(r.prediction).to.equal(((r.id % 10) + 1) % 10);
          seen.add(r.id);
        }
        expect(seen.size).to.equal(ROWS);
      } finally {
        await handle.kill().catch(() => undefined);
      }
    });

    it('a missing input path fails train() with the path in the message, and the trainers with it', async () => {
      const handle = await TFCluster.run({
        module: consumer,
        numExecutors: 2,
        inputMode: InputMode.SPARK,
        via: via(),
        reservationTimeout: 180,
      });
      const missing = path.join(dir, 'no-such-data');
      const err = await handle.train(missing).catch((e: Error) => e);
      expect((err as Error).message).to.contain('no-such-data');
      const failed = await handle.shutdown({ timeout: 60 }).catch((e: Error) => e);
      expect((failed as Error).message).to.contain('no-such-data');
    });

    it('a trainer that terminates its feed early ends the feed cleanly (no hang), reported per worker', async () => {
      const handle = await TFCluster.run({
        module: consumer,
        numExecutors: 2,
        inputMode: InputMode.SPARK,
        args: ['terminate'],
        via: via(),
        reservationTimeout: 180,
      });
      const epochs = await handle.train(data, { epochs: 3 });
      // Stops after the first epoch: every worker said it terminated.
      expect(epochs).to.have.length(1);
      expect(epochs[0].workers.every((w) => w.terminated)).to.equal(true);
      const stats = [...(await handle.shutdown({ timeout: 60 })).values()] as Array<Stats & { terminated: boolean }>;
      expect(stats.map((s) => s.terminated)).to.deep.equal([true, true]);
      for (const s of stats) expect(s.rows).to.equal(64);
    });

    it('a trainer killed mid-stream fails train() as a crash naming the node, not as an early end', async () => {
      const handle = await TFCluster.run({
        module: consumer,
        numExecutors: 2,
        inputMode: InputMode.SPARK,
        args: ['crash'],
        via: via(),
        reservationTimeout: 180,
      });
      try {
        const err = await rejection(handle.train(data, { epochs: 3 }));
        // Both trainers crash; whichever feed notices first names its worker (feed index 0 or 1) and host:port.
        expect(err.message).to.match(/(chief|worker):0|worker [01] \(/);
        expect(err.message).to.match(/crashed|killed|exited with code|disconnected/);
        expect(err.message).not.to.match(/terminated/);
      } finally {
        await handle.kill();
      }
    });

    it('train() in InputMode.TENSORFLOW is refused with a clear message', async () => {
      const handle = await TFCluster.run({ module: consumer, numExecutors: 1, via: via(), reservationTimeout: 180 });
      const err = await handle.train(data).catch((e: Error) => e);
      expect((err as Error).message).to.match(/needs inputMode SPARK/);
      await handle.kill();
    });
  });
}

feedSuite('the embedded local Spark', () => ({ local: {} }));
// The stack's 4 task slots hold 2 nodes and their 2 feeding tasks.
feedSuite(
  'spark-submit to the standalone master',
  () => ({ sparkSubmit: { master: requireStack().sparkMaster, conf: { 'spark.executor.memory': '512m' } } }),
  { nodes: 2, ps: 0 },
);

describe('InputMode.SPARK feeding a DataFrame of a Livy interactive session', function () {
  this.timeout(600_000);
  let livyUrl: string;
  let dir: string;
  before(async function () {
    const stack = requireStack();
    const sessions = livySessionsOrWhyNot(stack);
    if (!sessions.ok) skipBecause(this, sessions.why);
    livyUrl = stack.livy;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-feed-df-'));
    await writeParquetDataset(path.join(dir, 'data'), ROWS, 4);
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('feeds a DataFrame the notebook defined in the session, every row once', async () => {
    const dirsBefore = replClassDirs();
    const client = new LivyClient({ url: livyUrl });
    const session = await client.createSession({
      kind: 'pyspark',
      driverMemory: '512m',
      executorMemory: '512m',
      executorCores: 1,
      // Its application holds every free core of the stack: if this process dies mid-test, Livy
      // deletes the session within minutes instead of keeping them for its idle timeout.
      heartbeatTimeoutInSecond: SESSION_HEARTBEAT_SEC,
      conf: { 'spark.executor.cores': '1' },
    });
    try {
      await client.waitForSessionIdle(session.id, { timeoutMs: 300_000 });
      await client.runStatement(
        session.id,
        `df = spark.read.parquet(${JSON.stringify(`file://${path.join(dir, 'data')}`)}).filter("id % 2 = 0")`,
      );
      const handle = await TFCluster.run({
        module: consumer,
        numExecutors: 2,
        inputMode: InputMode.SPARK,
        via: { livy: { url: livyUrl, mode: 'session', sessionId: session.id } },
        reservationTimeout: 180,
      });
      const epochs = await handle.train({ dataFrame: 'df' });
      expect(epochs[0].workers.reduce((a, w) => a + w.rows, 0)).to.equal(ROWS / 2);
      const stats = [...(await handle.shutdown({ timeout: 120 })).values()] as Stats[];
      expect(stats.reduce((a, s) => a + s.rows, 0)).to.equal(ROWS / 2);
      expect(stats.reduce((a, s) => a + s.idSum, 0)).to.equal((ROWS / 2) * (ROWS / 2 - 1));
    } finally {
      await closeTestSession(client, session.id).catch(() => undefined);
    }
    expect(
      replClassDirs().filter((d) => !dirsBefore.includes(d)),
      'REPL class directories left behind',
    ).to.deep.equal([]);
  });
});
