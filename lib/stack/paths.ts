/**
 * Where provisioned software and the local stack's runtime files live.
 *
 * Everything downloaded or assembled goes under one cache directory outside the repository
 * (TFOS_HOME, default ~/.cache/tfjs-on-spark), so a fresh clone reuses it and `git clean` never
 * throws away gigabytes of Spark and Hadoop.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Versions we provision; one place so docs, setup and tests agree. */
export const VERSIONS = {
  spark: '3.5.8',
  scala: '2.12',
  hadoop: '3.4.2',
  // The newest Livy on Maven Central (0.8/0.9 are not published there); its batches run Spark 3.5.
  livy: '0.7.1-incubating',
  tensorflowWheel: '2.15.1',
  libtensorflowExpectedByTfjs: '2.9.1',
  pyarrow: '17.0.0',
  pandas: '2.2.3',
  numpy: '1.26.4',
} as const;

export interface TfosPaths {
  home: string;
  downloads: string;
  /** Python virtual environment with pyspark (SPARK_HOME lives inside it) and pyarrow. */
  pythonEnv: string;
  hadoop: string;
  livy: string;
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
    livy: path.join(home, `livy-${VERSIONS.livy}`),
    tensorflow: path.join(home, `tensorflow-${VERSIONS.tensorflowWheel}`),
    stack,
    logs: path.join(stack, 'logs'),
  };
}

/**
 * Java 17 for every JVM we start (Spark 3.5, Hadoop 3.4 and Livy 0.9 all run on it), because the
 * machine's default JDK may be another one. Order: TFOS_JAVA_HOME, JAVA_HOME if it is a 17, then
 * the usual install folders.
 */
export function java17Home(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.TFOS_JAVA_HOME?.trim();
  if (explicit) return explicit;
  const candidates: string[] = [];
  if (env.JAVA_HOME?.trim()) candidates.push(env.JAVA_HOME.trim());
  for (const root of ['/usr/lib/jvm', '/usr/java', '/opt/java']) {
    try {
      for (const name of fs.readdirSync(root).sort()) candidates.push(path.join(root, name));
    } catch {
      /* no such folder */
    }
  }
  for (const dir of candidates) {
    if (javaMajorVersion(dir) === 17 && fs.existsSync(path.join(dir, 'bin', 'java'))) return dir;
  }
  throw new Error(
    `no Java 17 found (looked at ${candidates.join(', ') || 'nothing'}); install one (Debian: apt-get install openjdk-17-jdk-headless) or set TFOS_JAVA_HOME`,
  );
}

/** The major version from a JDK's `release` file, or undefined. */
function javaMajorVersion(javaHome: string): number | undefined {
  try {
    const release = fs.readFileSync(path.join(javaHome, 'release'), 'utf8');
    const m = /^JAVA_VERSION="(\d+)/m.exec(release);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Java 17 closes JDK internals that Hadoop's RPC, Jetty and Livy's RPC (netty, kryo) still reach
 * into: the --add-opens flags every JVM service of the stack gets.
 */
export const JAVA17_OPENS = [
  'java.base/java.lang',
  'java.base/java.lang.invoke',
  'java.base/java.lang.reflect',
  'java.base/java.io',
  'java.base/java.net',
  'java.base/java.nio',
  'java.base/java.util',
  'java.base/java.util.concurrent',
  'java.base/java.util.concurrent.atomic',
  'java.base/sun.nio.ch',
  'java.base/sun.nio.cs',
  'java.base/sun.security.action',
  'java.base/sun.util.calendar',
].flatMap((p) => ['--add-opens', `${p}=ALL-UNNAMED`]);
