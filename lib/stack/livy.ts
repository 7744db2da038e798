/**
 * Livy for the local stack, assembled from Maven Central: the server and its dependencies
 * (livy-server pulls Scala 2.11 for Livy's own JVM, which is independent of Spark's Scala), run
 * against the provisioned Spark 3.5. Batches run spark-submit and work as is. Interactive
 * sessions need Livy's REPL jars built for Spark's Scala 2.12, which Maven Central does not carry;
 * when they are present (`<livy>/repl_2.12-jars`), sessions are enabled too.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from './exec';
import { JAVA17_OPENS } from './hadoop';
import { Logger } from './log';
import { java17Home, TfosPaths, VERSIONS } from './paths';
import { ServiceSpec } from './service';
import { SparkInstall } from './spark';

export interface LivyInstall {
  home: string;
  serverJarsDir: string;
  rscJarsDir: string;
  /** Livy REPL jars for Scala 2.12 (interactive sessions), when built. */
  replJarsDir?: string;
  javaHome: string;
}

export interface LivyStack {
  url: string;
  confDir: string;
  service: ServiceSpec;
}

const MARKER = '.tfos-complete';

function pom(): string {
  return `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tfjs-on-spark</groupId><artifactId>livy-runtime</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies><dependency><groupId>org.apache.livy</groupId><artifactId>livy-server</artifactId><version>${VERSIONS.livy}</version></dependency></dependencies>
</project>
`;
}

/**
 * REPL jars for Scala 2.12 (livy-repl + livy-core), which Maven Central does not have: a user
 * who built them (e.g. from Livy's sources) points TFOS_LIVY_REPL_JARS at their directory.
 */
function replJars(env: NodeJS.ProcessEnv): string | undefined {
  const dir = env.TFOS_LIVY_REPL_JARS?.trim();
  if (!dir) return undefined;
  if (!fs.existsSync(dir) || !fs.readdirSync(dir).some((f) => /^livy-repl_2\.12-.*\.jar$/.test(f))) {
    throw new Error(`TFOS_LIVY_REPL_JARS=${dir} has no livy-repl_2.12-*.jar`);
  }
  return path.resolve(dir);
}

function install(home: string, javaHome: string, env: NodeJS.ProcessEnv = process.env): LivyInstall {
  return {
    home,
    serverJarsDir: path.join(home, 'jars'),
    rscJarsDir: path.join(home, 'rsc-jars'),
    replJarsDir: replJars(env),
    javaHome,
  };
}

/** Resolves Livy's server jars into paths.livy once (Maven's repository is cached as well). */
export async function provisionLivy(paths: TfosPaths, log: Logger): Promise<LivyInstall> {
  const home = paths.livy;
  const javaHome = java17Home();
  if (fs.existsSync(path.join(home, MARKER))) return install(home, javaHome);
  log(`resolving Livy ${VERSIONS.livy} from Maven Central into ${home}`);
  const started = Date.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-livy-'));
  const staging = `${home}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(path.join(work, 'pom.xml'), pom());
    fs.rmSync(staging, { recursive: true, force: true });
    const jars = path.join(staging, 'jars');
    await run(
      'mvn',
      ['-q', '-B', `-Dmaven.repo.local=${path.join(paths.downloads, 'm2')}`, 'dependency:copy-dependencies', `-DoutputDirectory=${jars}`, '-DincludeScope=runtime'],
      { cwd: work, timeoutMs: 20 * 60_000, env: { ...process.env, JAVA_HOME: javaHome } },
    );
    // What Livy ships to a session's Spark driver: the RSC and the API it implements
    // (livy-rsc embeds its own shaded client-common; a second copy breaks the driver).
    const rsc = path.join(staging, 'rsc-jars');
    fs.mkdirSync(rsc, { recursive: true });
    for (const f of fs.readdirSync(jars)) {
      if (/^livy-(rsc|api)-.*\.jar$/.test(f)) fs.copyFileSync(path.join(jars, f), path.join(rsc, f));
    }
    fs.mkdirSync(path.join(staging, 'logs'), { recursive: true });
    fs.writeFileSync(path.join(staging, MARKER), new Date().toISOString());
    fs.rmSync(home, { recursive: true, force: true });
    fs.renameSync(staging, home);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new Error(`could not resolve Livy ${VERSIONS.livy} from Maven Central: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  log(`Livy jars ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return install(home, javaHome);
}

function jarList(dir: string): string {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.jar'))
    .sort()
    .map((f) => `file://${path.join(dir, f)}`)
    .join(',');
}

/** Writes livy.conf for the given Spark master and describes the server process. */
export function livyService(inst: LivyInstall, opts: { stackDir: string; port: number; sparkMaster: string; spark: SparkInstall; hadoopConfDir?: string }): LivyStack {
  const confDir = path.join(opts.stackDir, 'livy-conf');
  const logDir = path.join(opts.stackDir, 'logs', 'livy');
  fs.mkdirSync(confDir, { recursive: true });
  fs.mkdirSync(logDir, { recursive: true });
  const conf: Record<string, string> = {
    'livy.server.host': '127.0.0.1',
    'livy.server.port': String(opts.port),
    'livy.spark.master': opts.sparkMaster,
    'livy.spark.deploy-mode': 'client',
    // Local files (the launcher, test jobs) may be submitted: this is a single-user dev stack.
    'livy.file.local-dir-whitelist': '/',
    'livy.ui.enabled': 'false',
    'livy.server.recovery.mode': 'off',
    'livy.server.session.timeout-check': 'true',
    'livy.server.session.timeout': '30m',
    'livy.rsc.jars': jarList(inst.rscJarsDir),
  };
  if (inst.replJarsDir) {
    conf['livy.repl.jars'] = jarList(inst.replJarsDir);
    conf['livy.spark.scala-version'] = '2.12';
  }
  fs.writeFileSync(path.join(confDir, 'livy.conf'), Object.entries(conf).map(([k, v]) => `${k} = ${v}\n`).join(''));
  fs.writeFileSync(
    path.join(confDir, 'log4j.properties'),
    ['log4j.rootLogger=INFO,console', 'log4j.appender.console=org.apache.log4j.ConsoleAppender', 'log4j.appender.console.layout=org.apache.log4j.PatternLayout', 'log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n', ''].join('\n'),
  );
  const url = `http://127.0.0.1:${opts.port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    JAVA_HOME: inst.javaHome,
    SPARK_HOME: opts.spark.sparkHome,
    SPARK_SCALA_VERSION: '2.12',
    PYSPARK_PYTHON: opts.spark.python,
    LIVY_HOME: inst.home,
    LIVY_CONF_DIR: confDir,
    LIVY_LOG_DIR: logDir,
    SPARK_LOCAL_IP: '127.0.0.1',
  };
  if (opts.hadoopConfDir) env.HADOOP_CONF_DIR = opts.hadoopConfDir;
  return {
    url,
    confDir,
    service: {
      name: 'livy',
      command: path.join(inst.javaHome, 'bin', 'java'),
      args: [...JAVA17_OPENS, '-Xmx512m', '-cp', `${confDir}:${path.join(inst.serverJarsDir, '*')}`, 'org.apache.livy.server.LivyServer'],
      env,
      cwd: opts.stackDir,
      ports: [opts.port],
      healthy: () => livyHealthy(url),
      startTimeoutMs: 120_000,
    },
  };
}

/** Healthy = the REST API answers GET /sessions. */
export async function livyHealthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/sessions`, { signal: AbortSignal.timeout(3000) });
    return res.ok;
  } catch {
    return false;
  }
}
