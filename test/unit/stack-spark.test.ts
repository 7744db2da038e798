/**
 * The dev stack's standalone Spark: its workers delete the folders of long-ended applications (a
 * stack that stays up across many runs otherwise fills gigabytes a day), and a user's own
 * SPARK_WORKER_OPTS still win.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SparkInstall } from '../../lib/platform/spark';
import { sparkServices, WORKER_CLEANUP_OPTIONS } from '../../lib/stack/spark';

function workers(env: NodeJS.ProcessEnv) {
  const stackDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-stack-spark-'));
  const saved = process.env.SPARK_WORKER_OPTS;
  if (env.SPARK_WORKER_OPTS === undefined) delete process.env.SPARK_WORKER_OPTS;
  else process.env.SPARK_WORKER_OPTS = env.SPARK_WORKER_OPTS;
  try {
    const install = { sparkHome: '/opt/spark', javaHome: '/opt/java', python: '/usr/bin/python3' } as unknown as SparkInstall;
    const stack = sparkServices(install, {
      stackDir,
      masterPort: 7077,
      masterUiPort: 8080,
      workers: 2,
      workerCores: 2,
      workerMemory: '1g',
      workerUiPortBase: 8081,
    });
    return stack.services.filter((s) => s.name.startsWith('spark-worker-'));
  } finally {
    if (saved === undefined) delete process.env.SPARK_WORKER_OPTS;
    else process.env.SPARK_WORKER_OPTS = saved;
    fs.rmSync(stackDir, { recursive: true, force: true });
  }
}

describe('the stack’s standalone Spark workers', () => {
  it('clean up the folders of applications that ended over two hours ago, every 15 minutes', () => {
    const ws = workers({});
    expect(ws).to.have.length(2);
    for (const w of ws) {
      const opts = String(w.env?.SPARK_WORKER_OPTS);
      expect(opts).to.equal(WORKER_CLEANUP_OPTIONS);
      expect(opts).to.include('-Dspark.worker.cleanup.enabled=true');
      expect(opts).to.include('-Dspark.worker.cleanup.appDataTtl=7200');
      expect(opts).to.include('-Dspark.worker.cleanup.interval=900');
    }
  });

  it('pass a user’s SPARK_WORKER_OPTS after their own, so the user’s settings win', () => {
    for (const w of workers({ SPARK_WORKER_OPTS: '-Dspark.worker.cleanup.enabled=false' }))
      expect(w.env?.SPARK_WORKER_OPTS).to.equal(`${WORKER_CLEANUP_OPTIONS} -Dspark.worker.cleanup.enabled=false`);
  });
});
