/**
 * HDFS for the local stack: Hadoop 3.4 jars resolved from Maven Central (there is no binary
 * distribution there), run as a real NameNode and DataNode with WebHDFS on loopback.
 *
 * The published hadoop-hdfs jar carries no `webapps/` resources, which the daemons' HTTP servers
 * look up on the classpath; empty stand-ins in the config directory are enough, since WebHDFS is
 * served by servlets the daemons register themselves.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from '../platform/exec';
import { resolveHadoopConf } from '../platform/hadoop-conf';
import { JAVA17_OPENS, java17Home } from '../platform/java';
import { Logger } from '../platform/log';
import { TfosPaths } from '../platform/paths';
import { VERSIONS } from '../platform/versions';
import { LOOPBACK, Placement, ServiceSpec } from './service';

export interface HadoopInstall {
  home: string;
  /** Jar paths (the daemons' classpath, besides the config directory). */
  classpath: string[];
  javaHome: string;
}

export interface HdfsStack {
  configDir: string;
  defaultFS: string;
  webhdfs: string;
  services: ServiceSpec[];
}

const MARKER = '.tfos-complete';

function pom(artifacts: string[]): string {
  const dep = (a: string) =>
    `<dependency><groupId>org.apache.hadoop</groupId><artifactId>${a}</artifactId><version>${VERSIONS.hadoop}</version></dependency>`;
  return `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tfjs-on-spark</groupId><artifactId>hadoop-runtime</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>${artifacts.map(dep).join('')}</dependencies>
</project>
`;
}

function jarsIn(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.jar'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Resolves the Hadoop jars into paths.hadoop once (Maven's local repository is cached too). */
export function provisionHadoop(paths: TfosPaths, log: Logger): Promise<HadoopInstall> {
  return provisionHadoopArtifacts(paths, log, paths.hadoop, ['hadoop-hdfs', 'hadoop-hdfs-client', 'hadoop-common'], 'HDFS');
}

/**
 * Resolves Hadoop artifacts (and their runtime dependencies) from Maven Central into `home/lib`
 * once; a marker written last tells a complete install from an interrupted one.
 */
export async function provisionHadoopArtifacts(
  paths: TfosPaths,
  log: Logger,
  home: string,
  artifacts: string[],
  what: string,
): Promise<HadoopInstall> {
  const lib = path.join(home, 'lib');
  const javaHome = java17Home();
  if (fs.existsSync(path.join(home, MARKER))) return { home, classpath: jarsIn(lib), javaHome };
  log(`resolving Hadoop ${VERSIONS.hadoop} (${what}) from Maven Central into ${home}`);
  const started = Date.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-hadoop-'));
  const staging = `${home}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(path.join(work, 'pom.xml'), pom(artifacts));
    fs.rmSync(staging, { recursive: true, force: true });
    await run(
      'mvn',
      [
        '-q',
        '-B',
        `-Dmaven.repo.local=${path.join(paths.downloads, 'm2')}`,
        'dependency:copy-dependencies',
        `-DoutputDirectory=${path.join(staging, 'lib')}`,
        '-DincludeScope=runtime',
      ],
      { cwd: work, timeoutMs: 20 * 60_000, env: { ...process.env, JAVA_HOME: javaHome } },
    );
    fs.writeFileSync(path.join(staging, MARKER), new Date().toISOString());
    fs.rmSync(home, { recursive: true, force: true });
    fs.renameSync(staging, home);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new Error(
      `could not resolve Hadoop ${VERSIONS.hadoop} (${what}) from Maven Central: ${err instanceof Error ? err.message : String(err)}`,
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  log(`Hadoop ${what} jars ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { home, classpath: jarsIn(lib), javaHome };
}

export function xml(props: Record<string, string>): string {
  const body = Object.entries(props)
    .map(([k, v]) => `  <property><name>${k}</name><value>${v}</value></property>`)
    .join('\n');
  return `<?xml version="1.0"?>\n<configuration>\n${body}\n</configuration>\n`;
}

export interface HdfsPorts {
  nameNodeRpcPort: number;
  nameNodeHttpPort: number;
  /** DataNode ports: data transfer, HTTP (WebHDFS), IPC. Default: NameNode HTTP port + 1..3. */
  dataNodePorts?: [number, number, number];
  /** Where the NameNode runs (default: loopback here). */
  nameNode?: Placement;
  /**
   * One DataNode per entry (default: one beside the NameNode). Each binds and registers with its
   * own address, which is what WebHDFS redirects clients to, so it must be reachable by them.
   */
  dataNodes?: Placement[];
}

/** Writes the config and describes the NameNode (formatted on first start) and its DataNodes. */
export function hdfsServices(install: HadoopInstall, opts: HdfsPorts & { stackDir: string }): HdfsStack {
  const confDir = path.join(opts.stackDir, 'hadoop-conf');
  const dataDir = path.join(opts.stackDir, 'hdfs');
  const [dnData, dnHttp, dnIpc] = opts.dataNodePorts ?? [opts.nameNodeHttpPort + 1, opts.nameNodeHttpPort + 2, opts.nameNodeHttpPort + 3];
  const nn = opts.nameNode ?? LOOPBACK;
  const dataNodes = opts.dataNodes ?? [nn];
  const defaultFS = `hdfs://${nn.address}:${opts.nameNodeRpcPort}`;
  const webhdfs = `http://${nn.address}:${opts.nameNodeHttpPort}`;
  for (const d of ['webapps/hdfs', 'webapps/datanode', 'webapps/static']) fs.mkdirSync(path.join(confDir, d), { recursive: true });
  fs.writeFileSync(path.join(confDir, 'webapps/hdfs/index.html'), 'tfjs-on-spark local HDFS\n');
  fs.writeFileSync(path.join(confDir, 'webapps/datanode/index.html'), 'tfjs-on-spark local DataNode\n');
  fs.writeFileSync(path.join(confDir, 'core-site.xml'), xml({ 'fs.defaultFS': defaultFS, 'hadoop.tmp.dir': path.join(dataDir, 'tmp') }));
  fs.writeFileSync(
    path.join(confDir, 'hdfs-site.xml'),
    xml({
      'dfs.namenode.name.dir': `file://${path.join(dataDir, 'name')}`,
      'dfs.datanode.data.dir': `file://${path.join(dataDir, 'data')}`,
      'dfs.replication': '1',
      // A single-user development cluster on loopback.
      'dfs.permissions.enabled': 'false',
      'dfs.namenode.rpc-bind-host': nn.address,
      'dfs.namenode.http-address': `${nn.address}:${opts.nameNodeHttpPort}`,
      // The first DataNode's addresses; further DataNodes override them (see dataNodeOverrides).
      'dfs.datanode.address': `${dataNodes[0].address}:${dnData}`,
      'dfs.datanode.http.address': `${dataNodes[0].address}:${dnHttp}`,
      'dfs.datanode.ipc.address': `${dataNodes[0].address}:${dnIpc}`,
      'dfs.datanode.hostname': dataNodes[0].address,
      'dfs.client.use.datanode.hostname': 'true',
      'dfs.namenode.safemode.threshold-pct': '0',
      'dfs.namenode.datanode.registration.ip-hostname-check': 'false',
      'dfs.heartbeat.interval': '1',
    }),
  );
  fs.writeFileSync(
    path.join(confDir, 'log4j.properties'),
    [
      'log4j.rootLogger=INFO,console',
      'log4j.appender.console=org.apache.log4j.ConsoleAppender',
      'log4j.appender.console.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n',
      '',
    ].join('\n'),
  );
  const java = path.join(install.javaHome, 'bin', 'java');
  const cp = [confDir, ...install.classpath].join(':');
  const jvm = [...JAVA17_OPENS, '-Xmx512m', `-Dhadoop.log.dir=${path.join(opts.stackDir, 'logs')}`, '-cp', cp];
  const env = { ...process.env, JAVA_HOME: install.javaHome, HADOOP_CONF_DIR: confDir };
  const nameDir = path.join(dataDir, 'name');
  const dataNodeDir = (i: number) => path.join(dataDir, i === 0 ? 'data' : `data-${i + 1}`);
  // Format once: the name directory has no `current/` until the first format.
  // A fresh namespace gets a new cluster id, which DataNode storage of an older namespace would
  // refuse to join ("Incompatible clusterIDs"), so formatting also clears the DataNode's blocks.
  // `exec` makes the NameNode JVM itself the process-group leader the supervisor signals.
  const nameNodeScript = [
    `if [ ! -d ${q(nameDir + '/current')} ]; then`,
    `  rm -rf ${dataNodes.map((_, i) => q(dataNodeDir(i))).join(' ')} &&`,
    `  ${q(java)} ${jvm.map(q).join(' ')} org.apache.hadoop.hdfs.server.namenode.NameNode -format -force -nonInteractive || exit 1;`,
    'fi;',
    `exec ${q(java)} ${jvm.map(q).join(' ')} org.apache.hadoop.hdfs.server.namenode.NameNode`,
  ].join(' ');
  const services: ServiceSpec[] = [
    {
      name: 'hdfs-namenode',
      command: 'sh',
      args: ['-c', nameNodeScript],
      env,
      cwd: opts.stackDir,
      netns: nn.netns,
      ports: [opts.nameNodeRpcPort, opts.nameNodeHttpPort],
      healthy: async () => (await webhdfsAnswers(webhdfs)) === true,
      startTimeoutMs: 120_000,
    },
    ...dataNodes.map((at, i): ServiceSpec => ({
      name: i === 0 ? 'hdfs-datanode' : `hdfs-datanode-${i + 1}`,
      command: java,
      // Generic -D options (the DataNode parses them) give each DataNode its own address and storage.
      args: [
        ...jvm,
        'org.apache.hadoop.hdfs.server.datanode.DataNode',
        ...dataNodeOverrides(at.address, [dnData, dnHttp, dnIpc], dataNodeDir(i)),
      ],
      env,
      cwd: opts.stackDir,
      netns: at.netns,
      ports: [dnData, dnHttp, dnIpc],
      // Side by side: all of them are healthy once the NameNode counts every one.
      healthy: () => hdfsHealthy(webhdfs, dataNodes.length),
      startTimeoutMs: 120_000,
      startsAfter: ['hdfs-namenode'],
    })),
  ];
  return { configDir: confDir, defaultFS, webhdfs, services };
}

function dataNodeOverrides(address: string, [data, http, ipc]: number[], storage: string): string[] {
  return Object.entries({
    'dfs.datanode.address': `${address}:${data}`,
    'dfs.datanode.http.address': `${address}:${http}`,
    'dfs.datanode.ipc.address': `${address}:${ipc}`,
    'dfs.datanode.hostname': address,
    'dfs.datanode.data.dir': `file://${storage}`,
  }).flatMap(([k, v]) => ['-D', `${k}=${v}`]);
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A user's HDFS, from the *-site.xml files in HADOOP_CONF_DIR; nothing to start. */
export function externalHdfs(hadoopConfDir: string): HdfsStack {
  return { ...resolveHadoopConf(hadoopConfDir), services: [] };
}

async function webhdfsAnswers(webhdfs: string): Promise<boolean> {
  try {
    const res = await fetch(`${webhdfs}/webhdfs/v1/?op=GETFILESTATUS&user.name=tfos`, { signal: AbortSignal.timeout(3000) });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Healthy = WebHDFS answers, and the NameNode (JMX FSNamesystemState) counts at least one live
 * DataNode whose storage report has arrived. A DataNode counts as live as soon as it registers,
 * but until its first storage report the NameNode sees no capacity and refuses to place blocks
 * ("Failed to find datanode"), so CapacityRemaining must be positive too.
 */
export async function hdfsHealthy(webhdfs: string, dataNodes = 1): Promise<boolean> {
  if (!(await webhdfsAnswers(webhdfs))) return false;
  try {
    const res = await fetch(`${webhdfs}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) return false;
    const body = (await res.json()) as { beans?: Array<{ NumLiveDataNodes?: number; CapacityRemaining?: number; FSState?: string }> };
    const state = body.beans?.[0];
    return (state?.NumLiveDataNodes ?? 0) >= dataNodes && (state?.CapacityRemaining ?? 0) > 0 && state?.FSState !== 'safeMode';
  } catch {
    return false;
  }
}
