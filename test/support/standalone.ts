/**
 * A private Spark standalone cluster for tests that need workers configured differently from the
 * shared stack (e.g. GPU resources). Real master and worker JVMs on free loopback ports.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../lib/platform/log';
import { tfosPaths } from '../../lib/platform/paths';
import { freePort } from '../../lib/stack/ports';
import { provisionSpark, sparkServices } from '../../lib/stack/spark';
import { RunningService, startService, stopService } from '../../lib/stack/supervisor';

export interface PrivateStandalone {
  master: string;
  stop(): Promise<void>;
}

export async function startPrivateStandalone(
  opts: { workers?: number; cores?: number; workerOpts?: string } = {},
): Promise<PrivateStandalone> {
  const spark = await provisionSpark(tfosPaths(), silentLogger);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-sa-'));
  const stack = sparkServices(spark, {
    stackDir: dir,
    masterPort: await freePort(),
    masterUiPort: await freePort(),
    workers: opts.workers ?? 1,
    workerCores: opts.cores ?? 4,
    workerMemory: '2g',
    workerUiPortBase: await freePort(),
  });
  const running: RunningService[] = [];
  const stop = async () => {
    for (const s of running.reverse()) await stopService(s);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const spec of stack.services) {
      if (opts.workerOpts && spec.name.startsWith('spark-worker')) spec.env = { ...spec.env, SPARK_WORKER_OPTS: opts.workerOpts };
      running.push(await startService(spec, path.join(dir, 'logs')));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { master: stack.masterUrl, stop };
}
