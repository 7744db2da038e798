/**
 * Where the cluster is, for every command and route, without flags — the Hadoop way:
 *
 *   HDFS   HADOOP_CONF_DIR (the user's, else the one the running `tfos stack` wrote) gives
 *          fs.defaultFS, so `hdfs:///data/x` has a NameNode, and the WebHDFS endpoint;
 *          TFOS_WEBHDFS overrides the endpoint alone.
 *   Spark  SPARK_MASTER, else the running stack's standalone master.
 *   Livy   TFOS_LIVY_URL, else the running stack's Livy.
 *
 * Read-only and cheap (files and pids, no network): the stack's state file records what `tfos
 * stack up` started; a stack whose processes are gone counts as not running. This is the one place
 * that knows how a running stack is found — a new kind of stack (several hosts, YARN) records its
 * endpoints in the same file and is found here too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveHadoopConf } from './hadoop-conf';
import { tfosPaths } from './paths';
import { bootId, recordedProcessAlive } from './process-group';

/** The part of `<TFOS_HOME>/stack/state.json` other processes read (lib/stack/stack.ts writes it). */
export interface RecordedStack {
  /** The boot the stack was started in: after a reboot (or on a copy of this disk) nothing of it runs. */
  bootId?: string;
  services: Array<{ name: string; pid: number; startTicks?: number }>;
  endpoints: {
    sparkMaster: string;
    sparkUi: string;
    defaultFS: string;
    webhdfs: string;
    /** The Hadoop client configuration the stack wrote (or the user's it was started with). */
    hadoopConfDir?: string;
    livy: string;
    livySessions?: boolean;
  };
  /**
   * A stack started with --yarn: its ResourceManager, and Spark properties its YARN applications
   * should get (e.g. spark.yarn.jars from the shared local Spark instead of uploading it per run).
   */
  yarn?: { resourceManager: string; nodeManagers: number; sparkConf?: Record<string, string> };
}

export interface HdfsEndpoints {
  /** The HADOOP_CONF_DIR these came from. */
  configDir: string;
  /** fs.defaultFS, e.g. hdfs://127.0.0.1:8020 */
  defaultFS: string;
  /** NameNode HTTP endpoint, e.g. http://127.0.0.1:9870 */
  webhdfs: string;
}

export interface ClusterEnvironment {
  sparkMaster?: string;
  livyUrl?: string;
  hdfs?: HdfsEndpoints;
  /** The running `tfos stack`, when one is up. */
  stack?: RecordedStack;
  /** Where each value came from, for messages ("SPARK_MASTER", "tfos stack", ...). */
  from: { sparkMaster?: string; livyUrl?: string; hdfs?: string };
}

export function stackStateFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(tfosPaths(env).stack, 'state.json');
}

/** The stack `tfos stack up` started, if its state file exists and its processes are alive. */
export function runningStack(env: NodeJS.ProcessEnv = process.env): RecordedStack | undefined {
  let state: RecordedStack;
  try {
    state = JSON.parse(fs.readFileSync(stackStateFile(env), 'utf8')) as RecordedStack;
  } catch {
    return undefined;
  }
  if (!state?.endpoints || !Array.isArray(state.services) || state.services.length === 0) return undefined;
  return state.services.every((s) => recordedStackProcessAlive(state, s)) ? state : undefined;
}

/** True if this service of a recorded stack still runs: same boot, same pid, same start time. */
export function recordedStackProcessAlive(stack: Pick<RecordedStack, 'bootId'>, service: { pid: number; startTicks?: number }): boolean {
  if (stack.bootId !== undefined && stack.bootId !== bootId()) return false;
  return recordedProcessAlive(service);
}

/** fs.defaultFS and WebHDFS from a HADOOP_CONF_DIR; TFOS_WEBHDFS overrides the endpoint. */
export function hdfsFromConf(configDir: string, env: NodeJS.ProcessEnv = process.env): HdfsEndpoints {
  const conf = resolveHadoopConf(configDir);
  return { configDir: conf.configDir, defaultFS: conf.defaultFS, webhdfs: env.TFOS_WEBHDFS?.trim() || conf.webhdfs };
}

/** Resolves Spark, Livy and HDFS from the environment first, then from the running stack. */
export function clusterEnvironment(env: NodeJS.ProcessEnv = process.env): ClusterEnvironment {
  const stack = runningStack(env);
  const out: ClusterEnvironment = { stack, from: {} };
  const master = env.SPARK_MASTER?.trim();
  if (master) [out.sparkMaster, out.from.sparkMaster] = [master, 'SPARK_MASTER'];
  else if (stack) [out.sparkMaster, out.from.sparkMaster] = [stack.endpoints.sparkMaster, 'tfos stack'];
  const livy = env.TFOS_LIVY_URL?.trim();
  if (livy) [out.livyUrl, out.from.livyUrl] = [livy, 'TFOS_LIVY_URL'];
  else if (stack) [out.livyUrl, out.from.livyUrl] = [stack.endpoints.livy, 'tfos stack'];
  const confDir = env.HADOOP_CONF_DIR?.trim();
  if (confDir) {
    [out.hdfs, out.from.hdfs] = [hdfsFromConf(confDir, env), `HADOOP_CONF_DIR=${confDir}`];
  } else if (stack?.endpoints.hadoopConfDir && fs.existsSync(path.join(stack.endpoints.hadoopConfDir, 'core-site.xml'))) {
    [out.hdfs, out.from.hdfs] = [
      hdfsFromConf(stack.endpoints.hadoopConfDir, env),
      `tfos stack (HADOOP_CONF_DIR=${stack.endpoints.hadoopConfDir})`,
    ];
  }
  return out;
}

/** The WebHDFS endpoint for an hdfs:// URI's authority ('' for hdfs:///path), from the configuration. */
export function webhdfsFor(authority: string, env: NodeJS.ProcessEnv = process.env): { webhdfs: string; defaultFS: string } | undefined {
  const hdfs = clusterEnvironment(env).hdfs;
  if (!hdfs) return undefined;
  const confAuthority = hdfs.defaultFS.replace(/^hdfs:\/\//, '').replace(/\/.*$/, '');
  if (authority === '' || authority === confAuthority) return { webhdfs: hdfs.webhdfs, defaultFS: hdfs.defaultFS };
  return undefined;
}

/** Shell lines exporting what `tfos stack env` prints. */
export function exportLines(stack: RecordedStack): string[] {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = [`export SPARK_MASTER=${q(stack.endpoints.sparkMaster)}`];
  if (stack.endpoints.hadoopConfDir) lines.push(`export HADOOP_CONF_DIR=${q(stack.endpoints.hadoopConfDir)}`);
  lines.push(`export TFOS_LIVY_URL=${q(stack.endpoints.livy)}`);
  return lines;
}
