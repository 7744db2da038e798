/**
 * LivyClient against a tiny local HTTP stub that answers like Livy's REST API: polling with
 * backoff, Livy's error bodies, a failed batch carrying its log, transient failures, timeouts.
 */
import { expect } from 'chai';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import {
  backoffDelay,
  LivyBatchFailedError,
  LivyClient,
  LivyConnectionError,
  LivyHttpError,
  LivySessionFailedError,
  LivyStatementError,
  LivyTimeoutError,
  parseLivyErrorBody,
  pollUntil,
} from '../../lib/io/livy-client';
import { freePort } from '../../lib/stack/ports';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Route handler: answers [status, body]; a string body is sent as is, anything else as JSON. Null: never answer. */
type Handler = (req: Seen) => [number, unknown] | null;

class LivyStub {
  readonly seen: Seen[] = [];
  private routes: Array<[string, RegExp, Handler]> = [];
  private readonly server: http.Server;
  private readonly hanging = new Set<http.ServerResponse>();
  url = '';

  constructor() {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
        this.seen.push(seen);
        const route = this.routes.find(([m, re]) => m === seen.method && re.test(seen.url));
        const answer: [number, unknown] | null = route ? route[2](seen) : [404, { msg: `no route for ${seen.method} ${seen.url}` }];
        if (answer === null) {
          this.hanging.add(res);
          return;
        }
        const [status, payload] = answer;
        const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
        res.writeHead(status, { 'Content-Type': typeof payload === 'string' ? 'text/plain' : 'application/json' });
        res.end(text);
      });
    });
  }

  on(method: string, re: RegExp, handler: Handler): this {
    this.routes.push([method, re, handler]);
    return this;
  }

  /** Answers a route with each of `answers` in turn, repeating the last one. */
  sequence(method: string, re: RegExp, answers: Array<[number, unknown]>): this {
    let i = 0;
    return this.on(method, re, () => answers[Math.min(i++, answers.length - 1)]);
  }

  count(method: string, re: RegExp): number {
    return this.seen.filter((s) => s.method === method && re.test(s.url)).length;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A clock for pollUntil whose sleeps return at once and move time forward by what was asked. */
function fakeClock() {
  const start = 1_000_000;
  let t = start;
  const waits: number[] = [];
  return {
    start,
    waits,
    now: () => t,
    sleep: async (ms: number) => {
      waits.push(ms);
      t += ms;
    },
  };
}

const batch = (id: number, state: string, extra: object = {}) => ({
  id,
  name: null,
  owner: null,
  proxyUser: null,
  state,
  appId: null,
  appInfo: { driverLogUrl: null, sparkUiUrl: null },
  log: [],
  ...extra,
});
const FAST = { pollMs: 5, maxPollMs: 20 };

describe('LivyClient (HTTP stub)', () => {
  let stub: LivyStub;
  let client: LivyClient;

  beforeEach(async () => {
    stub = await new LivyStub().start();
    client = new LivyClient({ url: `${stub.url}/`, timeoutMs: 2000 });
  });
  afterEach(() => stub.stop());

  describe('backoff', () => {
    it('grows the delay by the factor and caps it', () => {
      expect(backoffDelay(0)).to.equal(250);
      expect(backoffDelay(1)).to.equal(375);
      expect(backoffDelay(2)).to.equal(562.5);
      expect(backoffDelay(50)).to.equal(5000);
      expect(backoffDelay(1e6)).to.equal(5000);
      expect(backoffDelay(0, 100, 50)).to.equal(50);
      expect(backoffDelay(3, 100, 10_000, 2)).to.equal(800);
    });

    it('polls until a final state, with growing gaps between polls', async () => {
      stub.sequence('GET', /^\/batches\/7\/state$/, [
        [200, { id: 7, state: 'starting' }],
        [200, { id: 7, state: 'starting' }],
        [200, { id: 7, state: 'running' }],
        [200, { id: 7, state: 'running' }],
        [200, { id: 7, state: 'success' }],
      ]);
      const states: string[] = [];
      const clock = fakeClock();
      const result = await client.waitForBatch(7, { pollMs: 20, factor: 2, maxPollMs: 100, clock, onState: (s) => states.push(s) });
      expect(result).to.equal('success');
      expect(states).to.deep.equal(['starting', 'running', 'success']);
      expect(stub.count('GET', /state$/)).to.equal(5);
      // 20, 40, 80 ms, then capped at maxPollMs: one wait between each pair of polls.
      expect(clock.waits).to.deep.equal([20, 40, 80, 100]);
    });

    it('rides out a few transient failures (502/503, no answer) but not more', async () => {
      stub.sequence('GET', /^\/batches\/1\/state$/, [
        [503, 'Service Unavailable'],
        [502, { msg: 'bad gateway' }],
        [200, { id: 1, state: 'success' }],
      ]);
      expect(await client.waitForBatch(1, FAST)).to.equal('success');

      // No answer within the request timeout counts as transient too.
      let polls = 0;
      stub.on('GET', /^\/batches\/6\/state$/, () => (++polls === 1 ? null : [200, { id: 6, state: 'success' }]));
      const impatient = new LivyClient({ url: stub.url, timeoutMs: 100 });
      expect(await impatient.waitForBatch(6, FAST)).to.equal('success');
      expect(polls).to.equal(2);

      stub.sequence('GET', /^\/batches\/2\/state$/, [[503, { msg: 'busy' }]]);
      const err = await client.waitForBatch(2, { ...FAST, retries: 2 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(LivyHttpError);
      expect((err as LivyHttpError).status).to.equal(503);
      expect(stub.count('GET', /^\/batches\/2\/state$/)).to.equal(3);
    });

    it('does not retry errors that are not transient', async () => {
      stub.sequence('GET', /^\/batches\/3\/state$/, [[404, { msg: "Session '3' not found." }]]);
      const err = await client.waitForBatch(3, FAST).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(LivyHttpError);
      expect((err as LivyHttpError).livyMessage).to.equal("Session '3' not found.");
      expect(stub.count('GET', /^\/batches\/3\/state$/)).to.equal(1);
    });
  });

  describe('errors', () => {
    it('parses Livy error bodies: JSON msg, message, a JSON string, plain text, long text', () => {
      expect(parseLivyErrorBody('{"msg":"Session \'5\' not found."}')).to.equal("Session '5' not found.");
      expect(parseLivyErrorBody('{"message":"denied"}')).to.equal('denied');
      expect(parseLivyErrorBody('"just a string"')).to.equal('just a string');
      expect(parseLivyErrorBody('  <html>Bad Gateway</html>\n')).to.equal('<html>Bad Gateway</html>');
      expect(parseLivyErrorBody('')).to.equal('');
      expect(parseLivyErrorBody('{"other":1}')).to.equal('{"other":1}');
      const long = 'x'.repeat(5000);
      expect(parseLivyErrorBody(long)).to.have.length(2003);
    });

    it('turns a non-2xx answer into LivyHttpError with method, URL, status and Livy message', async () => {
      stub.on('POST', /^\/batches$/, () => [400, { msg: 'Local path /etc/x.py cannot be added to user sessions.' }]);
      const err = await client.submitBatch({ file: '/etc/x.py' }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(LivyHttpError);
      const e = err as LivyHttpError;
      expect(e.status).to.equal(400);
      expect(e.method).to.equal('POST');
      expect(e.url).to.equal(`${stub.url}/batches`);
      expect(e.livyMessage).to.equal('Local path /etc/x.py cannot be added to user sessions.');
      expect(e.message).to.contain('HTTP 400').and.contain('cannot be added');
    });

    it('reports a plain-text error body as is, and a 200 that is not JSON', async () => {
      stub.on('GET', /^\/sessions\/1$/, () => [500, 'java.lang.NullPointerException']);
      stub.on('GET', /^\/sessions\/2$/, () => [200, '<html>proxy login</html>']);
      const e1 = (await client.getSession(1).catch((e: unknown) => e)) as LivyHttpError;
      expect(e1).to.be.instanceOf(LivyHttpError);
      expect(e1.livyMessage).to.equal('java.lang.NullPointerException');
      const e2 = (await client.getSession(2).catch((e: unknown) => e)) as LivyHttpError;
      expect(e2).to.be.instanceOf(LivyHttpError);
      expect(e2.livyMessage).to.contain('not JSON').and.contain('proxy login');
    });

    it('names a refused connection', async () => {
      const nobody = new LivyClient({ url: `http://127.0.0.1:${await freePort()}` });
      const err = await nobody.getBatch(1).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(LivyConnectionError);
      expect((err as LivyConnectionError).code).to.equal('ECONNREFUSED');
      expect(await nobody.isHealthy()).to.equal(false);
    });
  });

  describe('batches', () => {
    it('submits only the fields given, with the CSRF header, and returns the finished batch', async () => {
      stub.on('POST', /^\/batches$/, () => [201, batch(4, 'starting')]);
      stub.sequence('GET', /^\/batches\/4\/state$/, [
        [200, { id: 4, state: 'running' }],
        [200, { id: 4, state: 'success' }],
      ]);
      stub.on('GET', /^\/batches\/4$/, () => [200, batch(4, 'success', { appId: 'app-1' })]);
      const done = await client.runBatch(
        { file: 'file:///tmp/job.py', args: ['a'], driverMemory: '512m', executorCores: undefined, conf: { 'spark.cores.max': '1' } },
        FAST,
      );
      expect(done.state).to.equal('success');
      expect(done.appId).to.equal('app-1');
      const post = stub.seen.find((s) => s.method === 'POST')!;
      expect(JSON.parse(post.body)).to.deep.equal({
        file: 'file:///tmp/job.py',
        args: ['a'],
        driverMemory: '512m',
        conf: { 'spark.cores.max': '1' },
      });
      expect(post.headers['x-requested-by']).to.equal('tfjs-on-spark');
      expect(post.headers['content-type']).to.equal('application/json');
    });

    it('throws LivyBatchFailedError with the state, app id and the tail of the log when a batch dies', async () => {
      stub.on('POST', /^\/batches$/, () => [201, batch(9, 'starting')]);
      stub.sequence('GET', /^\/batches\/9\/state$/, [
        [200, { id: 9, state: 'running' }],
        [200, { id: 9, state: 'dead' }],
      ]);
      stub.on('GET', /^\/batches\/9$/, () => [200, batch(9, 'dead', { appId: 'app-20250101-0009', log: ['short'] })]);
      stub.on('GET', /^\/batches\/9\/log/, () => [
        200,
        { id: 9, from: 0, total: 3, log: ['stdout: ', 'ValueError: tfos-marker', '\nstderr: '] },
      ]);
      const err = await client.runBatch({ file: 'file:///tmp/bad.py' }, FAST).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(LivyBatchFailedError);
      const e = err as LivyBatchFailedError;
      expect(e.batchId).to.equal(9);
      expect(e.state).to.equal('dead');
      expect(e.appId).to.equal('app-20250101-0009');
      expect(e.log).to.include('ValueError: tfos-marker');
      expect(e.message).to.contain("state 'dead'").and.contain('ValueError: tfos-marker');
      // The log was asked for as "the last N lines" (no from).
      const logReq = stub.seen.find((s) => /\/log/.test(s.url))!;
      expect(logReq.url).to.equal('/batches/9/log?size=200');
    });

    it('falls back to the batch log when the log endpoint fails', async () => {
      stub.sequence('GET', /^\/batches\/5\/state$/, [[200, { id: 5, state: 'killed' }]]);
      stub.on('GET', /^\/batches\/5$/, () => [200, batch(5, 'killed', { log: ['from the batch'] })]);
      stub.on('GET', /^\/batches\/5\/log/, () => [500, 'oops']);
      const e = (await client.waitForBatch(5, FAST).catch((x: unknown) => x)) as LivyBatchFailedError;
      expect(e).to.be.instanceOf(LivyBatchFailedError);
      expect(e.state).to.equal('killed');
      expect(e.log).to.deep.equal(['from the batch']);
    });
  });

  describe('timeouts', () => {
    it('gives up on one request that gets no answer', async function () {
      // The request timeout is 200 ms; a client that waited for the answer would hit this test's.
      this.timeout(5000);
      stub.on('GET', /^\/batches\/1$/, () => null);
      const quick = new LivyClient({ url: stub.url, timeoutMs: 200 });
      const err = await quick.getBatch(1).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(LivyConnectionError);
      expect((err as LivyConnectionError).code).to.equal('ETIMEDOUT');
      expect((err as Error).message).to.contain('200 ms');
    });

    it('gives up waiting for a batch that never finishes, at the deadline, naming the last state', async () => {
      stub.on('GET', /^\/batches\/2\/state$/, () => [200, { id: 2, state: 'running' }]);
      const clock = fakeClock();
      const err = await client.waitForBatch(2, { timeoutMs: 300, pollMs: 20, maxPollMs: 50, clock }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(LivyTimeoutError);
      expect((err as LivyTimeoutError).lastState).to.equal('running');
      expect((err as Error).message)
        .to.contain('Livy batch 2')
        .and.contain('300 ms');
      // It kept polling until the deadline, not before: 20, 30, 45, then 50 each, the last wait cut to fit.
      expect(clock.waits).to.deep.equal([20, 30, 45, 50, 50, 50, 50, 5]);
      expect(clock.now() - clock.start).to.equal(300);
    });

    it('pollUntil stops at the deadline even when the delay would be longer', async () => {
      const clock = fakeClock();
      const err = await pollUntil(
        'x',
        async () => 'waiting',
        () => false,
        (s) => s,
        { timeoutMs: 100, pollMs: 10_000, clock },
      ).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(LivyTimeoutError);
      expect(clock.waits).to.deep.equal([100]);
    });
  });

  describe('sessions and statements', () => {
    it('waits for idle, runs a statement and returns its text/plain result', async () => {
      stub.on('POST', /^\/sessions$/, () => [201, { id: 0, state: 'starting', kind: 'pyspark', appId: null, appInfo: {}, log: [] }]);
      stub.sequence('GET', /^\/sessions\/0\/state$/, [
        [200, { id: 0, state: 'starting' }],
        [200, { id: 0, state: 'idle' }],
      ]);
      stub.on('POST', /^\/sessions\/0\/statements$/, () => [201, { id: 3, code: 'x', state: 'waiting', output: null }]);
      stub.sequence('GET', /^\/sessions\/0\/statements\/3$/, [
        [200, { id: 3, code: 'x', state: 'running', output: null }],
        [200, { id: 3, code: 'x', state: 'available', output: { status: 'ok', execution_count: 0, data: { 'text/plain': '4950' } } }],
      ]);
      stub.on('DELETE', /^\/sessions\/0$/, () => [200, { msg: 'deleted' }]);
      const s = await client.createSession({ kind: 'pyspark' });
      await client.waitForSessionIdle(s.id, FAST);
      expect(await client.runStatement(s.id, 'sc.parallelize(range(100)).sum()', FAST)).to.equal('4950');
      await client.closeSession(s.id);
      expect(JSON.parse(stub.seen.find((x) => x.url === '/sessions/0/statements')!.body)).to.deep.equal({
        code: 'sc.parallelize(range(100)).sum()',
      });
      expect(stub.count('DELETE', /^\/sessions\/0$/)).to.equal(1);
    });

    it('raises LivyStatementError with the Python exception', async () => {
      stub.on('POST', /^\/sessions\/1\/statements$/, () => [201, { id: 0, code: '1/0', state: 'waiting', output: null }]);
      stub.on('GET', /^\/sessions\/1\/statements\/0$/, () => [
        200,
        {
          id: 0,
          code: '1/0',
          state: 'available',
          output: {
            status: 'error',
            execution_count: 0,
            ename: 'ZeroDivisionError',
            evalue: 'division by zero',
            traceback: ['Traceback...\n'],
          },
        },
      ]);
      const err = (await client.runStatement(1, '1/0', FAST).catch((e: unknown) => e)) as LivyStatementError;
      expect(err).to.be.instanceOf(LivyStatementError);
      expect(err.ename).to.equal('ZeroDivisionError');
      expect(err.evalue).to.equal('division by zero');
      expect(err.message).to.contain('ZeroDivisionError: division by zero');
    });

    it('raises LivySessionFailedError with the session log when the session dies while starting', async () => {
      stub.sequence('GET', /^\/sessions\/2\/state$/, [
        [200, { id: 2, state: 'starting' }],
        [200, { id: 2, state: 'dead' }],
      ]);
      stub.on('GET', /^\/sessions\/2\/log/, () => [200, { id: 2, from: 0, total: 1, log: ['Cannot find Livy REPL jars.'] }]);
      const err = (await client.waitForSessionIdle(2, FAST).catch((e: unknown) => e)) as LivySessionFailedError;
      expect(err).to.be.instanceOf(LivySessionFailedError);
      expect(err.state).to.equal('dead');
      expect(err.log).to.deep.equal(['Cannot find Livy REPL jars.']);
    });
  });
});
