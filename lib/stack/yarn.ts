/**
 * YARN for `tfos stack up --yarn`: Hadoop's own ResourceManager and NodeManager daemons (jars from
 * Maven Central, like HDFS), so Spark's YARN client (spark-yarn ships in the pyspark distribution)
 * runs applications in real YARN containers.
 *
 * Configuration: one client directory (`<stack>/yarn-conf`: the HDFS client files plus
 * yarn-site.xml and capacity-scheduler.xml) that becomes the stack's HADOOP_CONF_DIR, so
 * `spark-submit --master yarn` finds the ResourceManager; and one directory per NodeManager with
 * its own addresses and local/log dirs (the daemons take no -D options).
 */
import * as dns from 'node:dns/promises';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { JAVA17_OPENS } from '../platform/java';
import { Logger } from '../platform/log';
import { TfosPaths } from '../platform/paths';
import { VERSIONS } from '../platform/versions';
import { HadoopInstall, provisionHadoopArtifacts, xml } from './hadoop';
import { LOOPBACK, Placement, ServiceSpec } from './service';

export const YARN_PORTS = { rm: 8032, scheduler: 8030, tracker: 8031, admin: 8033, rmWeb: 8088, nm: 8041, localizer: 8040, nmWeb: 8042 };

export function yarnHome(paths: TfosPaths): string {
  return path.join(paths.home, `hadoop-yarn-${VERSIONS.hadoop}`);
}

/** ResourceManager + NodeManager jars (with the HDFS client: NodeManagers localize from HDFS). */
export function provisionYarn(paths: TfosPaths, log: Logger): Promise<HadoopInstall> {
  return provisionHadoopArtifacts(
    paths,
    log,
    yarnHome(paths),
    [
      'hadoop-yarn-server-resourcemanager',
      'hadoop-yarn-server-nodemanager',
      'hadoop-yarn-server-timelineservice',
      'hadoop-yarn-client',
      'hadoop-hdfs-client',
      'hadoop-common',
    ],
    'YARN',
  );
}

export interface YarnOptions {
  stackDir: string;
  /** The HDFS client configuration to extend (core-site.xml, hdfs-site.xml). */
  hdfsConfDir: string;
  resourceManager?: Placement;
  nodeManagers?: Placement[];
  /** What each NodeManager offers to containers. */
  nodeMemoryMb?: number;
  nodeVcores?: number;
}

export interface YarnStack {
  /** HADOOP_CONF_DIR for clients: HDFS and YARN. */
  confDir: string;
  /** The ResourceManager's web/REST address, e.g. http://10.x.y.11:8088 */
  resourceManager: string;
  nodeManagers: number;
  services: ServiceSpec[];
}

export interface YarnStatus {
  resourceManager: string;
  /** NodeManagers the ResourceManager counts RUNNING. */
  nodeManagers: number;
  healthy: boolean;
}

interface RmNode {
  nodeHostName: string;
  state: string;
}

async function rmJson<T>(rm: string, p: string): Promise<T | undefined> {
  try {
    const res = await fetch(`${rm}/ws/v1/cluster${p}`, { signal: AbortSignal.timeout(3000), headers: { accept: 'application/json' } });
    if (!res.ok) return undefined;
    return (await res.json()) as T;
  } catch {
    return undefined;
  }
}

/** Host names of the NodeManagers the ResourceManager counts RUNNING. */
export async function runningNodeManagers(rm: string): Promise<string[]> {
  const body = await rmJson<{ nodes?: { node?: RmNode[] } | null }>(rm, '/nodes');
  return (body?.nodes?.node ?? []).filter((n) => n.state === 'RUNNING').map((n) => n.nodeHostName);
}

/**
 * The running NodeManager that is the one at `address`. A NodeManager registers under the
 * canonical name of its address: on loopback that is `localhost` (from /etc/hosts), on a
 * namespace host, whose address no name resolves to, the address itself.
 */
export async function registeredAs(running: string[], address: string): Promise<string | undefined> {
  for (const name of running) {
    if (name === address) return name;
    const resolved = await dns.lookup(name, { all: true }).catch(() => []);
    if (resolved.some((r) => r.address === address)) return name;
  }
  return undefined;
}

export async function yarnStatus(rm: string, expectedNodeManagers: number): Promise<YarnStatus> {
  const info = await rmJson<{ clusterInfo?: { state?: string } }>(rm, '/info');
  const nodes = await runningNodeManagers(rm);
  return {
    resourceManager: rm,
    nodeManagers: nodes.length,
    healthy: info?.clusterInfo?.state === 'STARTED' && nodes.length >= expectedNodeManagers,
  };
}

export function yarnServices(install: HadoopInstall, opts: YarnOptions): YarnStack {
  const rmAt = opts.resourceManager ?? LOOPBACK;
  const nms = opts.nodeManagers ?? [rmAt];
  const rmHost = rmAt.address;
  const rm = `http://${rmHost}:${YARN_PORTS.rmWeb}`;
  const memory = opts.nodeMemoryMb ?? 6144;
  const common: Record<string, string> = {
    'yarn.resourcemanager.hostname': rmHost,
    'yarn.resourcemanager.address': `${rmHost}:${YARN_PORTS.rm}`,
    'yarn.resourcemanager.scheduler.address': `${rmHost}:${YARN_PORTS.scheduler}`,
    'yarn.resourcemanager.resource-tracker.address': `${rmHost}:${YARN_PORTS.tracker}`,
    'yarn.resourcemanager.admin.address': `${rmHost}:${YARN_PORTS.admin}`,
    'yarn.resourcemanager.webapp.address': `${rmHost}:${YARN_PORTS.rmWeb}`,
    'yarn.nodemanager.resource.memory-mb': String(memory),
    'yarn.nodemanager.resource.cpu-vcores': String(opts.nodeVcores ?? 4),
    'yarn.scheduler.minimum-allocation-mb': '128',
    'yarn.scheduler.maximum-allocation-mb': String(memory),
    // Development machine: JVM virtual memory and a nearly full disk must not kill containers.
    'yarn.nodemanager.vmem-check-enabled': 'false',
    'yarn.nodemanager.pmem-check-enabled': 'false',
    'yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage': '99.9',
    'yarn.nodemanager.delete.debug-delay-sec': '600',
    'yarn.log-aggregation-enable': 'false',
    'yarn.nodemanager.env-whitelist': 'JAVA_HOME,HADOOP_CONF_DIR,PATH,LANG,TZ',
  };
  const capacity = xml({
    'yarn.scheduler.capacity.root.queues': 'default',
    'yarn.scheduler.capacity.root.default.capacity': '100',
    'yarn.scheduler.capacity.root.default.maximum-capacity': '100',
    // Client-mode Spark apps have an ApplicationMaster each: let them take what they need.
    'yarn.scheduler.capacity.maximum-am-resource-percent': '0.5',
  });
  const confDir = path.join(opts.stackDir, 'yarn-conf');
  const writeConf = (dir: string, props: Record<string, string>) => {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ['core-site.xml', 'hdfs-site.xml', 'log4j.properties']) {
      const src = path.join(opts.hdfsConfDir, f);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(dir, f));
    }
    fs.writeFileSync(path.join(dir, 'yarn-site.xml'), xml(props));
    fs.writeFileSync(path.join(dir, 'capacity-scheduler.xml'), capacity);
  };
  writeConf(confDir, common);
  const java = path.join(install.javaHome, 'bin', 'java');
  const jvm = (dir: string, logName: string) => [
    ...JAVA17_OPENS,
    '-Xmx512m',
    `-Dhadoop.log.dir=${path.join(opts.stackDir, 'logs')}`,
    `-Dyarn.log.dir=${path.join(opts.stackDir, 'logs')}`,
    `-Dhadoop.log.file=${logName}`,
    '-cp',
    [dir, ...install.classpath].join(':'),
  ];
  const services: ServiceSpec[] = [
    {
      name: 'yarn-resourcemanager',
      command: java,
      args: [...jvm(confDir, 'yarn-resourcemanager.log'), 'org.apache.hadoop.yarn.server.resourcemanager.ResourceManager'],
      env: { ...process.env, JAVA_HOME: install.javaHome, HADOOP_CONF_DIR: confDir, YARN_CONF_DIR: confDir },
      cwd: opts.stackDir,
      netns: rmAt.netns,
      ports: [YARN_PORTS.rm, YARN_PORTS.scheduler, YARN_PORTS.tracker, YARN_PORTS.admin, YARN_PORTS.rmWeb],
      healthy: async () => (await rmJson<{ clusterInfo?: { state?: string } }>(rm, '/info'))?.clusterInfo?.state === 'STARTED',
      startTimeoutMs: 180_000,
    },
  ];
  nms.forEach((at, i) => {
    const dir = path.join(opts.stackDir, `yarn-conf-nm${i + 1}`);
    const work = path.join(opts.stackDir, 'yarn', `nm${i + 1}`);
    fs.mkdirSync(path.join(work, 'local'), { recursive: true });
    fs.mkdirSync(path.join(work, 'logs'), { recursive: true });
    writeConf(dir, {
      ...common,
      'yarn.nodemanager.hostname': at.address,
      'yarn.nodemanager.address': `${at.address}:${YARN_PORTS.nm}`,
      'yarn.nodemanager.localizer.address': `${at.address}:${YARN_PORTS.localizer}`,
      'yarn.nodemanager.webapp.address': `${at.address}:${YARN_PORTS.nmWeb}`,
      'yarn.nodemanager.local-dirs': path.join(work, 'local'),
      'yarn.nodemanager.log-dirs': path.join(work, 'logs'),
    });
    services.push({
      name: `yarn-nodemanager-${i + 1}`,
      command: java,
      args: [...jvm(dir, `yarn-nodemanager-${i + 1}.log`), 'org.apache.hadoop.yarn.server.nodemanager.NodeManager'],
      // JAVA_HOME and PATH reach the containers (env-whitelist): Spark's executors run on Java 17.
      env: {
        ...process.env,
        JAVA_HOME: install.javaHome,
        HADOOP_CONF_DIR: dir,
        YARN_CONF_DIR: dir,
        PATH: `${path.join(install.javaHome, 'bin')}:${process.env.PATH ?? ''}`,
      },
      cwd: opts.stackDir,
      netns: at.netns,
      ports: [YARN_PORTS.nm, YARN_PORTS.localizer, YARN_PORTS.nmWeb],
      healthy: async () => (await registeredAs(await runningNodeManagers(rm), at.address)) !== undefined,
      startTimeoutMs: 180_000,
      startsAfter: ['yarn-resourcemanager'],
    });
  });
  return { confDir, resourceManager: rm, nodeManagers: nms.length, services };
}
