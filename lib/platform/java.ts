/** The JDK every JVM of the project runs on, and the flags Java 17 needs for them. */
import * as fs from 'node:fs';
import * as path from 'node:path';

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
