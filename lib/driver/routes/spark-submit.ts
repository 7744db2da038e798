/**
 * spark-submit route, used for the embedded default (local[N] from the provisioned SPARK_HOME,
 * nothing to start beforehand) and for any master the user names (standalone, YARN, k8s).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { groupMembers, killGroup } from '../../platform/process-group';
import { sparkEnv, SparkInstall } from '../../platform/spark';
import { AppExit, baseConf, LaunchPlan, SparkRoute, SubmittedApp } from './route';

export const LAUNCHER_PATH = path.resolve(__dirname, '../../../../spark-jobs/tfos_launcher.py');

export interface SparkSubmitOptions {
  master: string;
  conf?: Record<string, string>;
  deployMode?: 'client';
  /** Extra spark-submit arguments (--jars, --archives, --files ...). */
  extraArgs?: string[];
  /** HADOOP_CONF_DIR for the Spark application (fs.defaultFS for hdfs:/// and relative paths). */
  hadoopConfDir?: string;
  /**
   * The address the Spark driver binds and advertises to executors (SPARK_LOCAL_IP): this
   * machine's address on the cluster's network. Default loopback, right only for local clusters.
   */
  driverAddress?: string;
}

export class SparkSubmitRoute implements SparkRoute {
  readonly name: 'local' | 'spark-submit';

  constructor(
    private readonly spark: SparkInstall,
    private readonly opts: SparkSubmitOptions,
    name: 'local' | 'spark-submit' = 'spark-submit',
  ) {
    this.name = name;
  }

  async submit(plan: LaunchPlan): Promise<SubmittedApp> {
    const conf = { ...baseConf(plan), ...this.opts.conf };
    const args = ['--master', this.opts.master, '--deploy-mode', 'client', '--name', plan.appName];
    for (const [k, v] of Object.entries(conf)) args.push('--conf', `${k}=${v}`);
    args.push(...(this.opts.extraArgs ?? []), LAUNCHER_PATH, '--control', plan.controlUrl, '--token-file', plan.tokenFile);
    const submit = path.join(this.spark.sparkHome, 'bin', 'spark-submit');
    // Own process group: kill() must reach the JVM, the Python driver and local-mode workers.
    const env = sparkEnv(this.spark, process.env, this.opts.driverAddress);
    if (this.opts.hadoopConfDir) env.HADOOP_CONF_DIR = this.opts.hadoopConfDir;
    const child = spawn(submit, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', (err) => reject(new Error(`cannot run ${submit}: ${err.message}`)));
    });
    let tail: string[] = [];
    // The application's output is this user's business only (it may name paths, hosts, data).
    fs.mkdirSync(path.dirname(plan.logFile), { recursive: true, mode: 0o700 });
    const logStream = fs.createWriteStream(plan.logFile, { mode: 0o600 });
    const keep = (chunk: Buffer) => {
      logStream.write(chunk);
      tail.push(...chunk.toString('utf8').split('\n'));
      if (tail.length > 400) tail = tail.slice(-200);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    // If the driver process exits, the Spark application must not outlive it.
    const onExit = () => killGroup(pid);
    process.once('exit', onExit);
    const exited = new Promise<AppExit>((resolve) => {
      child.once('close', (code, signal) => {
        process.removeListener('exit', onExit);
        logStream.end();
        resolve({
          ok: code === 0,
          detail: signal ? `spark-submit killed by ${signal}` : `spark-submit exited with code ${code}`,
          logTail: `${tail.slice(-60).join('\n')}\n(whole output: ${plan.logFile})`,
        });
      });
    });
    return {
      describe: `spark-submit --master ${this.opts.master} (pid ${pid})`,
      exited,
      kill: async () => {
        if (groupMembers(pid).length === 0) return;
        killGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
        killGroup(pid, 'SIGKILL');
      },
    };
  }
}
