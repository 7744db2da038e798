/**
 * The secret never leaves the driver in the clear, on a real run through each route: while a
 * cluster runs, the test searches every process's argv, every log file of the stack and of the
 * Spark applications, the Livy API (batches, sessions, statements, logs) and the Spark UIs (driver
 * application's environment, the standalone master) for the cluster secret. Trainers get a clean
 * environment (no Spark internals such as PYTHON_WORKER_FACTORY_SECRET). And a run with Spark's
 * own authentication and wire encryption on (spark.authenticate, spark.network.crypto.enabled)
 * works.
 */
import { expect } from 'chai';
import { livySessionsOrWhyNot, requireStack } from '../support/stack';
import { skipBecause } from '../support/skip';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TFClusterHandle } from '../../lib/driver/cluster';
import { RouteOption, TFCluster } from '../../lib/driver/tf-cluster';
import { tfosPaths } from '../../lib/platform/paths';

const PROBE = path.resolve(__dirname, '../../../test/fixtures/modules/leak-probe.js');

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  return cond();
}

/**
 * Every readable process's argv and (for our own user) environment. Read asynchronously: this test
 * process is the cluster's driver, and a long synchronous scan would starve its event loop (the
 * launcher gives up on a driver silent for 20 s).
 */
async function processTexts(): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for (const pid of (await fs.promises.readdir('/proc')).filter((e) => /^\d+$/.test(e))) {
    for (const what of ['cmdline', 'environ']) {
      try {
        out.push([`/proc/${pid}/${what}`, (await fs.promises.readFile(`/proc/${pid}/${what}`)).toString('latin1')]);
      } catch {
        /* gone or not ours */
      }
    }
  }
  return out;
}

/**
 * Log files changed since `since` (ms): the stack's service logs, cluster logs, Spark
 * applications' work dirs. A file last written before this cluster started cannot hold its
 * secret; skipping those keeps the scan short after a long suite has filled the logs.
 */
async function logFiles(since: number): Promise<string[]> {
  const roots = [tfosPaths().logs, path.join(tfosPaths().stack, 'spark')];
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries: fs.Dirent[] = [];
    try {
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && !/\.(jar|tgz|gz|so)$/.test(e.name)) {
        const st = await fs.promises.stat(p).catch(() => undefined);
        if (st && st.mtimeMs >= since) files.push(p);
      }
    }
  };
  for (const root of roots) await walk(root);
  return files;
}

async function httpTexts(urls: string[]): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for (const url of urls) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      out.push([url, await res.text()]);
    } catch {
      /* not served here */
    }
  }
  return out;
}

function securitySuite(name: string, via: () => RouteOption, unavailable?: () => string | undefined) {
  describe(`the secret stays in the driver: a real run via ${name}`, function () {
    this.timeout(900_000);
    before(function () {
      const why = unavailable?.();
      if (why) skipBecause(this, why);
      via();
    });

    it('appears in no argv, log file, Livy API answer or Spark UI page; trainers get no Spark internals', async () => {
      // Whole seconds: some filesystems keep coarse modification times.
      const startedAt = Math.floor(Date.now() / 1000) * 1000 - 1000;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-leak-'));
      const secretOut = path.join(dir, 'secret');
      const doneFile = path.join(dir, 'done');
      let handle: TFClusterHandle | undefined;
      const progress: string[] = [];
      try {
        handle = await TFCluster.run({
          module: PROBE,
          numExecutors: 2,
          args: { secretOut, doneFile },
          via: via(),
          // Generous: on a loaded CI machine a Spark application can take minutes to come up.
          reservationTimeout: 480,
          onHandle: (h) => h.on('progress', (p: { message: string }) => progress.push(p.message)),
        });
        expect(await waitUntil(() => fs.existsSync(secretOut), 60_000), 'the probe never wrote the secret').to.equal(true);
        const secret = fs.readFileSync(secretOut, 'utf8');
        expect(secret).to.have.length.above(30);

        const places: Array<[string, string]> = await processTexts();
        for (const f of await logFiles(startedAt)) {
          try {
            places.push([f, (await fs.promises.readFile(f)).toString('latin1')]);
          } catch {
            /* rotated away */
          }
        }
        const urls: string[] = [];
        const livy = typeof via() === 'object' && 'livy' in via()! ? (via() as { livy: { url: string } }).livy.url : undefined;
        if (livy) {
          urls.push(`${livy}/batches`, `${livy}/sessions`);
          for (const m of progress.join('\n').matchAll(/Livy (batch|session) (\d+)/g)) {
            const base = `${livy}/${m[1] === 'batch' ? 'batches' : 'sessions'}/${m[2]}`;
            urls.push(base, `${base}/log?from=0&size=10000`, `${base}/state`);
            if (m[1] === 'session') urls.push(`${base}/statements`);
          }
        }
        if (handle.sparkUiUrl) {
          const ui = handle.sparkUiUrl.replace(/\/$/, '');
          urls.push(`${ui}/environment/`, `${ui}/jobs/`, `${ui}/api/v1/applications`);
          if (handle.sparkAppId) urls.push(`${ui}/api/v1/applications/${handle.sparkAppId}/environment`);
        }
        urls.push('http://127.0.0.1:8080/json/', 'http://127.0.0.1:8080/');
        places.push(...(await httpTexts(urls)));
        const leaks = places.filter(([, text]) => text.includes(secret)).map(([where]) => where);
        expect(leaks, 'places holding the cluster secret').to.deep.equal([]);
        expect(places.length).to.be.above(10);

        fs.writeFileSync(doneFile, '');
        const results = [...(await handle.shutdown({ timeout: 120 })).values()] as Array<{ sparkVars: string[] }>;
        for (const r of results) expect(r.sparkVars, 'Spark internals in a trainer environment').to.deep.equal([]);
      } finally {
        fs.writeFileSync(doneFile, '');
        await handle?.kill().catch(() => undefined);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

securitySuite('the embedded local Spark', () => ({ local: {} }));
// Routes on the stack: requireStack() throws, naming the service, when the stack is missing or broken.
securitySuite('spark-submit to the standalone master', () => ({
  sparkSubmit: { master: requireStack().sparkMaster, conf: { 'spark.executor.memory': '512m' } },
}));
securitySuite('a Livy batch', () => ({ livy: { url: requireStack().livy, executorMemory: '512m', driverMemory: '512m' } }));
securitySuite(
  'a Livy interactive session',
  () => ({ livy: { url: requireStack().livy, mode: 'session', executorMemory: '512m', driverMemory: '512m' } }),
  () => {
    const s = livySessionsOrWhyNot(requireStack());
    return s.ok ? undefined : s.why;
  },
);

describe("Spark's own authentication and encryption on", function () {
  this.timeout(600_000);
  it('a run with spark.authenticate and spark.network.crypto.enabled works (as `tfos run --conf` passes them)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-sparkauth-'));
    const doneFile = path.join(dir, 'done');
    fs.writeFileSync(doneFile, '');
    try {
      const handle = await TFCluster.run({
        module: PROBE,
        numExecutors: 2,
        args: { secretOut: path.join(dir, 'secret'), doneFile },
        via: { local: { conf: { 'spark.authenticate': 'true', 'spark.network.crypto.enabled': 'true' } } },
        reservationTimeout: 240,
      });
      const results = await handle.shutdown({ timeout: 120 });
      expect(results.size).to.equal(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
