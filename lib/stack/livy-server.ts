/**
 * Livy for the local stack.
 *
 * Maven Central publishes Livy only up to 0.7.1, with no REPL jars at all, so a Livy that runs
 * interactive sessions on Spark 3.5 (Scala 2.12, Java 17) has to be built: `provisionLivy` builds
 * Livy 0.9.0 from its source release with Maven (every dependency comes from Maven Central, into a
 * local repository under the download cache) and lays the result out like Livy's binary
 * distribution: `jars/` (the server), `rsc-jars/` (what a session's Spark driver gets) and
 * `repl_2.12-jars/` (the interpreters). The source release is looked for in TFOS_LIVY_SRC, in
 * the download cache, then in the project's sibling `../shared/vendor/` (checked against the
 * SHA256SUMS beside it). Without it, the newest server Maven Central has (0.7.1) is resolved
 * instead: batches work with it, sessions do not, and `replJarsDir` is then empty.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from '../platform/exec';
import { JAVA17_OPENS, java17Home } from '../platform/java';
import { Logger } from '../platform/log';
import { TfosPaths } from '../platform/paths';
import { SparkInstall, sparkEnv } from '../platform/spark';
import { VERSIONS } from '../platform/versions';
import { LOOPBACK, Placement, ServiceSpec } from './service';

const LIVY_SOURCE_VERSION = VERSIONS.livy.source;
const LIVY_CENTRAL_VERSION = VERSIONS.livy.central;
const SCALA = VERSIONS.scala;

export interface LivyInstall {
  home: string;
  serverJarsDir: string;
  rscJarsDir: string;
  /** Livy's REPL jars for Scala 2.12, needed by interactive sessions; '' when this Livy has none. */
  replJarsDir: string;
  javaHome: string;
}

export interface LivyStack {
  url: string;
  confDir: string;
  service: ServiceSpec;
}

const MARKER = '.tfos-complete';

/** Where a Livy version is installed: beside the other provisioned software. */
export function livyHome(paths: TfosPaths, version: string): string {
  return path.join(paths.home, `livy-${version}`);
}

function layout(home: string, javaHome: string, withRepl: boolean): LivyInstall {
  return {
    home,
    serverJarsDir: path.join(home, 'jars'),
    rscJarsDir: path.join(home, 'rsc-jars'),
    replJarsDir: withRepl ? path.join(home, `repl_${SCALA}-jars`) : '',
    javaHome,
  };
}

function isComplete(home: string): boolean {
  return fs.existsSync(path.join(home, MARKER));
}

/** The repository root (this file is dist/lib/stack/livy.js once built). */
const REPO_ROOT = path.resolve(__dirname, '../../..');

/** Where a machine's vendored sources live: `shared/vendor/` beside the checkout (as in CI). */
export function vendorDir(repoRoot: string = REPO_ROOT): string {
  return path.join(path.dirname(repoRoot), 'shared', 'vendor');
}

/**
 * Livy's source release, if there is one to build: TFOS_LIVY_SRC (a .tgz/.tar.gz/.zip or an
 * unpacked folder), else `apache-livy-<version>-src{.tgz,.tar.gz,.zip,/}` in the download cache,
 * else that archive in `../shared/vendor/` beside the repository. An archive with a SHA256SUMS
 * file beside it must match its line there (a vendored one must have a line at all).
 */
export function findLivySource(paths: TfosPaths, env: NodeJS.ProcessEnv = process.env, repoRoot: string = REPO_ROOT): string | undefined {
  const explicit = env.TFOS_LIVY_SRC?.trim();
  if (explicit) {
    if (!fs.existsSync(explicit)) throw new Error(`TFOS_LIVY_SRC=${explicit} does not exist`);
    const source = path.resolve(explicit);
    verifyChecksum(source, { required: false });
    return source;
  }
  const name = `apache-livy-${LIVY_SOURCE_VERSION}-src`;
  const base = path.join(paths.downloads, name);
  for (const candidate of [`${base}.tgz`, `${base}.tar.gz`, `${base}.zip`]) {
    if (fs.existsSync(candidate)) {
      verifyChecksum(candidate, { required: false });
      return candidate;
    }
  }
  if (fs.existsSync(path.join(base, 'pom.xml'))) return base;
  const vendored = path.join(vendorDir(repoRoot), `${name}.tgz`);
  if (fs.existsSync(vendored)) {
    verifyChecksum(vendored, { required: true });
    return vendored;
  }
  return undefined;
}

/**
 * Checks an archive against the SHA256SUMS (`<hex>  <file name>` lines) in its folder. Folders
 * are not checked; an archive with no SHA256SUMS beside it passes unless `required`.
 */
export function verifyChecksum(file: string, opts: { required: boolean }): void {
  if (fs.statSync(file).isDirectory()) return;
  const sums = path.join(path.dirname(file), 'SHA256SUMS');
  const base = path.basename(file);
  let want: string | undefined;
  if (fs.existsSync(sums)) {
    for (const line of fs.readFileSync(sums, 'utf8').split('\n')) {
      const m = /^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$/.exec(line);
      if (m && path.basename(m[2]) === base) want = m[1].toLowerCase();
    }
  }
  if (!want) {
    if (opts.required) throw new Error(`${file}: no checksum for ${base} in ${sums}; refusing to build an unverified source release`);
    return;
  }
  const got = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  if (got !== want) throw new Error(`${file}: sha256 ${got} does not match ${want} in ${sums}`);
}

/**
 * Makes Livy available once and returns where it is. Builds Livy 0.9.0 from its source release
 * when one is found (a few minutes, once), else resolves Livy 0.7.1's server from Maven Central.
 * A completed install (marker file) is never rebuilt or downloaded again.
 */
export async function provisionLivy(
  paths: TfosPaths,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
  repoRoot: string = REPO_ROOT,
): Promise<LivyInstall> {
  const javaHome = java17Home(env);
  const built = livyHome(paths, LIVY_SOURCE_VERSION);
  if (isComplete(built)) return layout(built, javaHome, true);
  const source = findLivySource(paths, env, repoRoot);
  if (source) {
    await buildFromSource(source, built, paths, javaHome, log, env);
    return layout(built, javaHome, true);
  }
  const central = livyHome(paths, LIVY_CENTRAL_VERSION);
  if (!isComplete(central)) {
    log(
      `no Livy ${LIVY_SOURCE_VERSION} source release found (set TFOS_LIVY_SRC, or put apache-livy-${LIVY_SOURCE_VERSION}-src.tgz in ${paths.downloads} or ${vendorDir(repoRoot)}); ` +
        `using Livy ${LIVY_CENTRAL_VERSION} from Maven Central, which runs batches but no interactive sessions`,
    );
    await resolveFromCentral(central, paths, javaHome, log, env);
  }
  return layout(central, javaHome, false);
}

function mavenRepo(paths: TfosPaths): string {
  return path.join(paths.downloads, 'm2');
}

/** Skips what a distribution build does not need and what would reach beyond Maven Central. */
const MAVEN_QUIET_BUILD = [
  '-q',
  '-B',
  `-Pscala-${SCALA}`,
  '-Pspark3',
  '-Dremoteresources.skip=true',
  '-Dcheckstyle.skip=true',
  '-Dscalastyle.skip=true',
  '-Drat.skip=true',
  '-Djacoco.skip=true',
  '-Dmaven.javadoc.skip=true',
  '-Dmaven.source.skip=true',
];

async function buildFromSource(
  source: string,
  home: string,
  paths: TfosPaths,
  javaHome: string,
  log: Logger,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  log(`building Livy ${LIVY_SOURCE_VERSION} (Scala ${SCALA}) from ${source}; dependencies from Maven Central (once, a few minutes)`);
  const started = Date.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-livy-build-'));
  const staging = `${home}.tmp-${process.pid}`;
  const mvnEnv = { ...env, JAVA_HOME: javaHome, MAVEN_OPTS: env.MAVEN_OPTS ?? '-Xmx1g' };
  try {
    const root = await unpackSource(source, work);
    const mvn = (args: string[]) =>
      run('mvn', [`-Dmaven.repo.local=${mavenRepo(paths)}`, ...MAVEN_QUIET_BUILD, ...args], {
        cwd: root,
        env: mvnEnv,
        timeoutMs: 45 * 60_000,
      });
    // 1. The modules others depend on, installed into the cache's Maven repository. Tests are
    //    skipped but compiled: later modules depend on livy-core's test jar.
    await mvn(['-DskipTests', '-pl', `core/scala-${SCALA},rsc`, '-am', 'install']);
    // 2. The REPL and the server, test sources not even compiled (the server's are large).
    //    `package` runs each module's own copy-dependencies into target/jars.
    await mvn(['-Dmaven.test.skip=true', '-pl', `repl,repl/scala-${SCALA},server`, 'package']);
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    const copy = (from: string, to: string) => {
      const dir = path.join(root, from);
      const jars = fs.readdirSync(dir).filter((f) => f.endsWith('.jar'));
      if (jars.length === 0) throw new Error(`the build left no jars in ${from}`);
      fs.mkdirSync(path.join(staging, to));
      for (const f of jars) fs.copyFileSync(path.join(dir, f), path.join(staging, to, f));
    };
    copy('server/target/jars', 'jars');
    copy('rsc/target/jars', 'rsc-jars');
    copy(`repl/scala-${SCALA}/target/jars`, `repl_${SCALA}-jars`);
    fs.mkdirSync(path.join(staging, 'logs'));
    fs.writeFileSync(path.join(staging, MARKER), `livy ${LIVY_SOURCE_VERSION} scala ${SCALA} built ${new Date().toISOString()}\n`);
    fs.rmSync(home, { recursive: true, force: true });
    fs.renameSync(staging, home);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new Error(`could not build Livy ${LIVY_SOURCE_VERSION} from ${source}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  log(`Livy ${LIVY_SOURCE_VERSION} ready in ${home} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}

/** Unpacks (or copies, leaving out old build output) the source into `work`; returns its root. */
async function unpackSource(source: string, work: string): Promise<string> {
  if (fs.statSync(source).isDirectory()) {
    const dest = path.join(work, 'src');
    fs.cpSync(source, dest, { recursive: true, filter: (p) => path.basename(p) !== 'target' });
    return dest;
  }
  if (/\.zip$/i.test(source)) await run('unzip', ['-q', source, '-d', work], { timeoutMs: 300_000 });
  else await run('tar', ['-xzf', source, '-C', work], { timeoutMs: 300_000 });
  if (fs.existsSync(path.join(work, 'pom.xml'))) return work;
  const dirs = fs.readdirSync(work).filter((d) => fs.existsSync(path.join(work, d, 'pom.xml')));
  if (dirs.length !== 1) throw new Error(`${source} does not look like Livy's source release (no single folder with a pom.xml)`);
  return path.join(work, dirs[0]);
}

/** The fallback: Livy 0.7.1's server and its dependencies from Maven Central (batches only). */
async function resolveFromCentral(home: string, paths: TfosPaths, javaHome: string, log: Logger, env: NodeJS.ProcessEnv): Promise<void> {
  const started = Date.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-livy-'));
  const staging = `${home}.tmp-${process.pid}`;
  const pom = `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tfjs-on-spark</groupId><artifactId>livy-runtime</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies><dependency><groupId>org.apache.livy</groupId><artifactId>livy-server</artifactId><version>${LIVY_CENTRAL_VERSION}</version></dependency></dependencies>
</project>
`;
  try {
    fs.writeFileSync(path.join(work, 'pom.xml'), pom);
    fs.rmSync(staging, { recursive: true, force: true });
    const jars = path.join(staging, 'jars');
    await run(
      'mvn',
      [
        '-q',
        '-B',
        `-Dmaven.repo.local=${mavenRepo(paths)}`,
        'dependency:copy-dependencies',
        `-DoutputDirectory=${jars}`,
        '-DincludeScope=runtime',
      ],
      {
        cwd: work,
        timeoutMs: 20 * 60_000,
        env: { ...env, JAVA_HOME: javaHome },
      },
    );
    // livy-rsc embeds a shaded client-common: a session driver gets livy-rsc and livy-api only.
    const rsc = path.join(staging, 'rsc-jars');
    fs.mkdirSync(rsc, { recursive: true });
    for (const f of fs.readdirSync(jars)) {
      if (/^livy-(rsc|api)-.*\.jar$/.test(f)) fs.copyFileSync(path.join(jars, f), path.join(rsc, f));
    }
    fs.mkdirSync(path.join(staging, 'logs'), { recursive: true });
    fs.writeFileSync(path.join(staging, MARKER), `livy ${LIVY_CENTRAL_VERSION} from Maven Central ${new Date().toISOString()}\n`);
    fs.rmSync(home, { recursive: true, force: true });
    fs.renameSync(staging, home);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new Error(
      `could not resolve Livy ${LIVY_CENTRAL_VERSION} from Maven Central: ${err instanceof Error ? err.message : String(err)}`,
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  log(`Livy ${LIVY_CENTRAL_VERSION} jars ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

function jarList(dir: string): string {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.jar'))
    .sort()
    .map((f) => path.join(dir, f))
    .join(',');
}

/** PySpark's own archives, which a pyspark session's driver needs on its Python path. */
function pysparkArchives(sparkHome: string): string | undefined {
  const lib = path.join(sparkHome, 'python', 'lib');
  let files: string[];
  try {
    files = fs.readdirSync(lib);
  } catch {
    return undefined;
  }
  const py4j = files.find((f) => /^py4j-.*-src\.zip$/.test(f));
  if (!files.includes('pyspark.zip') || !py4j) return undefined;
  return [path.join(lib, 'pyspark.zip'), path.join(lib, py4j)].join(',');
}

/**
 * Writes Livy's configuration into `<stackDir>/livy-conf` and describes the server process:
 * loopback only, the given Spark master in client deploy mode, local files allowed.
 */
export function livyService(
  install: LivyInstall,
  opts: {
    stackDir: string;
    port: number;
    sparkMaster: string;
    spark: SparkInstall;
    hadoopConfDir?: string;
    at?: Placement;
    sparkDefaults?: Record<string, string>;
  },
): LivyStack {
  const at = opts.at ?? LOOPBACK;
  const confDir = path.join(opts.stackDir, 'livy-conf');
  const logDir = path.join(opts.stackDir, 'logs', 'livy');
  fs.mkdirSync(confDir, { recursive: true });
  fs.mkdirSync(logDir, { recursive: true });
  const conf: Record<string, string> = {
    'livy.server.host': at.address,
    'livy.server.port': String(opts.port),
    'livy.spark.master': opts.sparkMaster,
    'livy.spark.deploy-mode': 'client',
    'livy.spark.scala-version': SCALA,
    // A single-user development stack: any local file (the launcher, a test's job) may be submitted.
    'livy.file.local-dir-whitelist': '/',
    'livy.ui.enabled': 'false',
    'livy.server.recovery.mode': 'off',
    'livy.server.session.timeout-check': 'true',
    'livy.server.session.timeout': '30m',
    // Keep finished batches and sessions visible (state, log) for a while.
    'livy.server.session.state-retain.sec': '1800s',
    // Session drivers and the server talk over this address, whatever the host name resolves to.
    'livy.rsc.launcher.address': at.address,
    'livy.rsc.rpc.server.address': at.address,
    'livy.rsc.jars': jarList(install.rscJarsDir),
  };
  if (install.replJarsDir) conf['livy.repl.jars'] = jarList(install.replJarsDir);
  const archives = pysparkArchives(opts.spark.sparkHome);
  if (archives) conf['livy.rsc.pyspark.archives'] = archives;
  fs.writeFileSync(
    path.join(confDir, 'livy.conf'),
    `# Written by tfjs-on-spark for the local stack; rewritten on every start.\n${Object.entries(conf)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join('')}`,
  );
  // Livy logs through reload4j (log4j 1 API); the supervisor sends stdout to the service log.
  fs.writeFileSync(
    path.join(confDir, 'log4j.properties'),
    [
      'log4j.rootCategory=INFO, console',
      'log4j.appender.console=org.apache.log4j.ConsoleAppender',
      'log4j.appender.console.target=System.err',
      'log4j.appender.console.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.console.layout.ConversionPattern=%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n',
      'log4j.logger.org.eclipse.jetty=WARN',
      '',
    ].join('\n'),
  );
  const url = `http://${at.address}:${opts.port}`;
  const env: NodeJS.ProcessEnv = {
    // Drivers Livy starts (spark-submit in client mode) run on Livy's host and bind its address.
    ...sparkEnv({ ...opts.spark, javaHome: install.javaHome }, process.env, at.address),
    SPARK_SCALA_VERSION: SCALA,
    LIVY_HOME: install.home,
    LIVY_CONF_DIR: confDir,
    LIVY_LOG_DIR: logDir,
  };
  if (opts.hadoopConfDir) env.HADOOP_CONF_DIR = opts.hadoopConfDir;
  if (opts.sparkDefaults) {
    // spark-defaults.conf for the applications Livy submits (its spark-submit reads SPARK_CONF_DIR).
    const sparkConf = path.join(opts.stackDir, 'livy-spark-conf');
    fs.mkdirSync(sparkConf, { recursive: true });
    fs.writeFileSync(
      path.join(sparkConf, 'spark-defaults.conf'),
      Object.entries(opts.sparkDefaults)
        .map(([k, v]) => `${k} ${v}\n`)
        .join(''),
    );
    env.SPARK_CONF_DIR = sparkConf;
  }
  return {
    url,
    confDir,
    service: {
      name: 'livy',
      command: path.join(install.javaHome, 'bin', 'java'),
      args: [
        ...JAVA17_OPENS,
        '-Xms64m',
        '-Xmx512m',
        '-Djava.net.preferIPv4Stack=true',
        '-cp',
        `${confDir}${path.delimiter}${path.join(install.serverJarsDir, '*')}`,
        'org.apache.livy.server.LivyServer',
      ],
      env,
      cwd: opts.stackDir,
      netns: at.netns,
      ports: [opts.port],
      healthy: () => livyHealthy(url),
      startTimeoutMs: 180_000,
      startsAfter: ['spark-master'],
    },
  };
}

/** Healthy = the REST API answers GET /sessions with 200. */
export async function livyHealthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/sessions`, { signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}
