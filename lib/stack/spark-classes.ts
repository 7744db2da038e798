/**
 * `tfos setup`: dumps Spark's classes into a JVM class-data archive (AppCDS) once, from a short
 * local-mode run of what a cluster's JVMs do (a SparkContext, a barrier stage of Python tasks),
 * so later Spark JVMs on this machine map them instead of parsing and verifying them again
 * (lib/platform/spark.ts, sparkClassArchive; routes pass it to the JVMs).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runAllowingFailure } from '../platform/exec';
import { Logger } from '../platform/log';
import { QUICK_START_JVM_OPTIONS, sparkClassArchivePath, sparkEnv, SparkInstall } from '../platform/spark';

const WORKLOAD = `
from pyspark import SparkConf, SparkContext
sc = SparkContext(conf=SparkConf())
sc.setLogLevel("ERROR")
sc.parallelize(range(2), 2).barrier().mapPartitions(lambda it: it).collect()
sc.stop()
`;

export async function provisionSparkClassArchive(install: SparkInstall, log: Logger): Promise<string | undefined> {
  if (install.source !== 'provisioned') return undefined; // a user's SPARK_HOME is theirs to tune
  const target = sparkClassArchivePath(install);
  if (fs.existsSync(target)) return target;
  log('dumping Spark’s classes into a class-data archive (faster JVM start for every cluster)');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-cds-'));
  const partial = `${target}.partial`;
  try {
    const script = path.join(work, 'workload.py');
    fs.writeFileSync(script, WORKLOAD);
    // No HADOOP_CONF_DIR: the archive's classpath must be a prefix of every Spark JVM's (executors
    // have none; a driver may append one).
    const env = sparkEnv(install);
    delete env.HADOOP_CONF_DIR;
    const res = await runAllowingFailure(
      path.join(install.sparkHome, 'bin', 'spark-submit'),
      [
        '--master',
        'local[2]',
        '--conf',
        'spark.ui.enabled=false',
        '--driver-java-options',
        `${QUICK_START_JVM_OPTIONS} -XX:ArchiveClassesAtExit=${partial}`,
        script,
      ],
      { env, cwd: work, timeoutMs: 300_000 },
    );
    if (res.code !== 0 || !fs.existsSync(partial)) {
      log(`no class-data archive (Spark JVMs start without one): spark-submit exited ${res.code}`);
      return undefined;
    }
    fs.renameSync(partial, target);
    return target;
  } catch (err) {
    // An optimization only: a machine where it cannot be made starts its JVMs the ordinary way.
    log(`no class-data archive (Spark JVMs start without one): ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  } finally {
    fs.rmSync(partial, { force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
}
