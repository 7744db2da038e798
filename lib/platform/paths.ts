/**
 * Where provisioned software and the local stack's runtime files live.
 *
 * Everything downloaded or assembled goes under one cache directory outside the repository
 * (TFOS_HOME, default ~/.cache/tfjs-on-spark), so a fresh clone reuses it and `git clean` never
 * throws away gigabytes of Spark and Hadoop.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { VERSIONS } from './versions';

export interface TfosPaths {
  home: string;
  downloads: string;
  /** Python virtual environment with pyspark (SPARK_HOME lives inside it) and pyarrow. */
  pythonEnv: string;
  hadoop: string;
  tensorflow: string;
  /** Runtime state of `tfos stack`: pids, ports, data dirs, logs. */
  stack: string;
  logs: string;
}

export function tfosHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.TFOS_HOME?.trim();
  if (fromEnv) return path.resolve(fromEnv);
  const xdg = env.XDG_CACHE_HOME?.trim();
  return path.join(xdg ? path.resolve(xdg) : path.join(os.homedir(), '.cache'), 'tfjs-on-spark');
}

export function tfosPaths(env: NodeJS.ProcessEnv = process.env): TfosPaths {
  const home = tfosHome(env);
  const stack = path.join(home, 'stack');
  return {
    home,
    downloads: path.join(home, 'downloads'),
    pythonEnv: path.join(home, `python-spark-${VERSIONS.spark}`),
    hadoop: path.join(home, `hadoop-${VERSIONS.hadoop}`),
    tensorflow: path.join(home, `tensorflow-${VERSIONS.tensorflowWheel}`),
    stack,
    logs: path.join(stack, 'logs'),
  };
}
