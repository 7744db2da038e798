/**
 * One service of the stack per container or machine: `tfos stack role <role>` runs the ServiceSpec
 * that `tfos stack up` would start for that role (same code: spark.ts, hadoop.ts, livy.ts, yarn.ts),
 * in the foreground, placed at this host's name. docker/compose.yaml runs one role per service;
 * the multi-host stack runs the same specs in network namespaces.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Logger } from '../platform/log';
import { tfosPaths } from '../platform/paths';
import { DEFAULT_PORTS } from './stack';
import { hdfsServices, provisionHadoop } from './hadoop';
import { livyService, provisionLivy } from './livy-server';
import { Placement, ServiceSpec } from './service';
import { provisionSpark, sparkServices } from './spark';
import { provisionYarn, yarnServices } from './yarn';

/** Role → the stack's service name it runs. */
export const ROLES = {
  'spark-master': 'spark-master',
  'spark-worker': 'spark-worker-1',
  namenode: 'hdfs-namenode',
  datanode: 'hdfs-datanode',
  livy: 'livy',
  resourcemanager: 'yarn-resourcemanager',
  nodemanager: 'yarn-nodemanager-1',
} as const;

export type Role = keyof typeof ROLES;

export interface RoleOptions {
  /** This host's name or address as the others reach it (default: the host name). */
  self?: string;
  /** Hosts of the Spark master, the NameNode and the ResourceManager (default: this host). */
  master?: string;
  namenode?: string;
  resourcemanager?: string;
  workerCores?: number;
  workerMemory?: string;
}

/** The ServiceSpec a role runs, built by the same functions `tfos stack up` uses. */
export async function roleService(role: Role, opts: RoleOptions, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<ServiceSpec> {
  if (!(role in ROLES)) throw new Error(`unknown role '${role}': expected one of ${Object.keys(ROLES).join(', ')}`);
  const paths = tfosPaths(env);
  fs.mkdirSync(paths.stack, { recursive: true });
  const self: Placement = { address: opts.self ?? os.hostname() };
  const at = (host: string | undefined): Placement => ({ address: host ?? self.address });
  const ports = DEFAULT_PORTS;
  const wanted = ROLES[role];
  let specs: ServiceSpec[];
  if (role === 'spark-master' || role === 'spark-worker' || role === 'livy') {
    const spark = await provisionSpark(paths, log, env);
    const sparkStack = sparkServices(spark, {
      stackDir: paths.stack,
      masterPort: ports.sparkMaster,
      masterUiPort: ports.sparkMasterUi,
      workers: 1,
      workerCores: opts.workerCores ?? 2,
      workerMemory: opts.workerMemory ?? '4g',
      workerUiPortBase: ports.sparkWorkerUiBase,
      master: role === 'spark-master' ? self : at(opts.master),
      workerHosts: [self],
    });
    specs = sparkStack.services;
    if (role === 'livy') {
      const hadoop = await provisionHadoop(paths, log);
      const hdfs = hdfsServices(hadoop, {
        stackDir: paths.stack,
        nameNodeRpcPort: ports.nameNodeRpc,
        nameNodeHttpPort: ports.nameNodeHttp,
        nameNode: at(opts.namenode),
        dataNodes: [self],
      });
      specs = [
        livyService(await provisionLivy(paths, log), {
          stackDir: paths.stack,
          port: ports.livy,
          sparkMaster: sparkStack.masterUrl,
          spark,
          hadoopConfDir: hdfs.configDir,
          at: self,
        }).service,
      ];
    }
  } else {
    const hadoop = await provisionHadoop(paths, log);
    const hdfs = hdfsServices(hadoop, {
      stackDir: paths.stack,
      nameNodeRpcPort: ports.nameNodeRpc,
      nameNodeHttpPort: ports.nameNodeHttp,
      nameNode: role === 'namenode' ? self : at(opts.namenode),
      dataNodes: [self],
    });
    specs = hdfs.services;
    if (role === 'resourcemanager' || role === 'nodemanager') {
      specs = yarnServices(await provisionYarn(paths, log), {
        stackDir: paths.stack,
        hdfsConfDir: hdfs.configDir,
        resourceManager: role === 'resourcemanager' ? self : at(opts.resourcemanager),
        nodeManagers: [self],
      }).services;
    }
  }
  const spec = specs.find((s) => s.name === wanted);
  if (!spec) throw new Error(`internal: the stack describes no service '${wanted}' for role ${role}`);
  return spec;
}

/** Runs a role's service in the foreground until it exits or this process is asked to stop. */
export async function runRole(role: Role, opts: RoleOptions, log: Logger): Promise<number> {
  const spec = await roleService(role, opts, log);
  log(`${role}: ${spec.command} ${spec.args.join(' ')}`);
  const child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  process.once('SIGTERM', forward('SIGTERM'));
  process.once('SIGINT', forward('SIGINT'));
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot start ${role} (${spec.command}): ${err.message}`)));
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
