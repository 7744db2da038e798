/**
 * `tfos setup`: provisions everything the project runs on, idempotently, into TFOS_HOME.
 * Each step is skipped when its result is already there, or when the user brings their own
 * (SPARK_HOME, HADOOP_CONF_DIR, TFOS_LIVY_URL).
 */
import { provisionHadoop } from './hadoop';
import { provisionLivy } from './livy-server';
import { Logger, stderrLogger } from '../platform/log';
import { tfosPaths } from '../platform/paths';
import { SparkInstall } from '../platform/spark';
import { provisionSpark } from './spark';
import { provisionSparkClassArchive } from './spark-classes';
import { provisionTensorflow, TensorflowInfo } from './tensorflow';
import { GpuBuildInfo, provisionTensorflowGpu } from './tensorflow-gpu';

export interface SetupResult {
  home: string;
  spark: SparkInstall;
  hadoop: string;
  livy: string;
  tensorflow: TensorflowInfo;
  /** `--gpu`: tfjs-node-gpu built against the CUDA wheel (lib/stack/tensorflow-gpu.ts). */
  gpu?: GpuBuildInfo;
  seconds: number;
}

export interface SetupOptions {
  log?: Logger;
  env?: NodeJS.ProcessEnv;
  /** Skip the native TensorFlow step (e.g. a machine that only submits jobs). */
  skipTensorflow?: boolean;
  /** Also the GPU build of tfjs-node in TFOS_HOME (about 2.4 GB from PyPI). */
  gpu?: boolean;
}

export async function setup(opts: SetupOptions = {}): Promise<SetupResult> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? stderrLogger;
  const paths = tfosPaths(env);
  const started = Date.now();
  log(`provisioning into ${paths.home} (set TFOS_HOME to change)`);
  // Downloads dominate, so the three JVM/Python stacks are fetched side by side.
  const [spark, hadoop, livy] = await Promise.all([
    provisionSpark(paths, log, env),
    env.HADOOP_CONF_DIR?.trim() ? Promise.resolve(undefined) : provisionHadoop(paths, log),
    env.TFOS_LIVY_URL?.trim() ? Promise.resolve(undefined) : provisionLivy(paths, log),
  ]);
  await provisionSparkClassArchive(spark, log);
  const tensorflow = opts.skipTensorflow
    ? { backend: 'skipped', source: 'existing' as const, packageDir: '', patched: false }
    : await provisionTensorflow(paths, log);
  const gpu = opts.gpu ? await provisionTensorflowGpu(paths, log, env) : undefined;
  return {
    home: paths.home,
    spark,
    hadoop: hadoop ? paths.hadoop : `external (HADOOP_CONF_DIR=${env.HADOOP_CONF_DIR})`,
    livy: livy ? livy.home : `external (TFOS_LIVY_URL=${env.TFOS_LIVY_URL})`,
    tensorflow,
    gpu,
    seconds: (Date.now() - started) / 1000,
  };
}
