/**
 * The driver's private directory for one cluster (the secret file): mode 0700 under the temp
 * directory, named after the driver's pid. It is removed when the cluster ends; a driver that was
 * killed cannot do that, so every new run first removes this user's run directories whose driver
 * is no longer running. (A reused pid only delays that cleanup; it never removes a live run's.)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isAlive } from '../platform/process-group';

export const RUN_DIR_PREFIX = 'tfos-run-';

/** A fresh run directory (0700), after removing those of drivers that died. */
export function createRunDir(tmp = os.tmpdir()): string {
  removeStaleRunDirs(tmp);
  return fs.mkdtempSync(path.join(tmp, `${RUN_DIR_PREFIX}${process.pid}-`));
}

/** Removes run directories of this user whose driver process is gone; returns their paths. */
export function removeStaleRunDirs(tmp = os.tmpdir()): string[] {
  const removed: string[] = [];
  const uid = process.getuid?.();
  let names: string[] = [];
  try {
    names = fs.readdirSync(tmp);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = new RegExp(`^${RUN_DIR_PREFIX}(\\d+)-`).exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    const dir = path.join(tmp, name);
    try {
      const st = fs.lstatSync(dir);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      /* raced with another cleanup */
    }
  }
  return removed;
}
