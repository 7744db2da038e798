/**
 * Livy sessions that tests create themselves. A session's driver (a Scala REPL, even for pyspark)
 * makes a class directory in java.io.tmpdir (spark<digits>) that neither Livy nor Spark removes;
 * the launcher removes it for the sessions a run creates, and these helpers do it for the tests'.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LivyClient } from '../../lib/io/livy-client';

/** Class directories of Scala REPLs in this machine's temporary directory (the stack's sessions run here). */
export function replClassDirs(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((d) => /^spark\d+$/.test(d) && fs.existsSync(path.join(os.tmpdir(), d, '$repl_$init.class')));
}

/** What the launcher's remove_repl_class_dir does, as a statement: only a spark<digits> directory goes. */
const REMOVE_REPL_CLASS_DIR = [
  'import os as _o, re as _r, shutil as _s',
  '_d = sc.getConf().get("spark.repl.class.outputDir", "")',
  'if _d and _r.match(r"^spark\\d+$", _o.path.basename(_d)): _s.rmtree(_d, ignore_errors=True)',
].join('\n');

/** Closes a pyspark session the test created, taking its REPL class directory along (best effort: a dead session has none to run). */
export async function closeTestSession(client: LivyClient, sessionId: number): Promise<void> {
  await client.runStatement(sessionId, REMOVE_REPL_CLASS_DIR, { timeoutMs: 60_000 }).catch(() => undefined);
  await client.closeSession(sessionId);
}
