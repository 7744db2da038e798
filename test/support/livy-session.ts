/**
 * Livy sessions that tests create themselves. A session's driver (a Scala REPL, even for pyspark)
 * makes a class directory in java.io.tmpdir (spark<digits>) that neither Livy nor Spark removes;
 * the launcher removes it for the sessions a run creates (remove_repl_class_dir), and these helpers
 * call the same function for the tests'.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { launcherStatement } from '../../lib/driver/routes/livy-route';
import { LAUNCHER_PATH } from '../../lib/driver/routes/spark-submit';
import { LivyClient } from '../../lib/io/livy-client';

/** Class directories of Scala REPLs in this machine's temporary directory (the stack's sessions run here). */
export function replClassDirs(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((d) => /^spark\d+$/.test(d) && fs.existsSync(path.join(os.tmpdir(), d, '$repl_$init.class')));
}

/** Closes a pyspark session the test created, taking its REPL class directory along (best effort: a dead session has none to run). */
export async function closeTestSession(client: LivyClient, sessionId: number): Promise<void> {
  const source = fs.readFileSync(LAUNCHER_PATH, 'utf8');
  await client
    .runStatement(sessionId, launcherStatement(source, 'remove_repl_class_dir(sc)'), { timeoutMs: 60_000 })
    .catch(() => undefined);
  await client.closeSession(sessionId);
}
