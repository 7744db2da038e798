/**
 * `tfos pack`: ships a user's project to a real cluster, where executors have no copy of it.
 *
 * The archive holds the project (its package.json, code and node_modules, including
 * tfjs-on-spark itself) and optionally this machine's Node binary. Spark unpacks it into every
 * executor's working directory (spark.archives with an alias), and trainers start from there.
 * On one machine none of this is needed: the module path is used directly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../platform/exec';

export const BUNDLED_NODE = '.tfos-node/bin/node';
const TRAINER_IN_PACKAGE = 'node_modules/tfjs-on-spark/dist/lib/node/trainer-main.js';

export interface PackOptions {
  projectDir: string;
  out: string;
  /** Include this machine's Node binary (executors without Node, same OS and architecture). */
  withNode?: boolean;
  /** Extra tar --exclude patterns. */
  exclude?: string[];
  /** Also pack `.env*` and `.npmrc` files (left out by default: they usually hold credentials). */
  includeEnvFiles?: boolean;
}

/** Files left out unless asked for: credentials that a project keeps beside its code. */
export const SECRET_FILE_PATTERNS = ['.env', '.env.*', '.npmrc'];

export interface PackResult {
  archive: string;
  bytes: number;
  withNode: boolean;
}

export async function packProject(opts: PackOptions): Promise<PackResult> {
  const project = path.resolve(opts.projectDir);
  if (!fs.existsSync(path.join(project, 'package.json'))) {
    throw new Error(`tfos pack: ${project} is not a Node project (no package.json)`);
  }
  if (!fs.existsSync(path.join(project, TRAINER_IN_PACKAGE))) {
    throw new Error(
      `tfos pack: ${path.join(project, TRAINER_IN_PACKAGE)} is missing; install tfjs-on-spark in the project (npm install tfjs-on-spark) first`,
    );
  }
  const out = path.resolve(opts.out);
  const tmp = `${out}.tmp-${process.pid}`;
  const excludes = [
    './.git',
    './.tfos-local',
    '*.log',
    './node_modules/.cache',
    ...(opts.includeEnvFiles ? [] : SECRET_FILE_PATTERNS),
    ...(opts.exclude ?? []),
  ];
  // A path inside the project would be packed into itself.
  if (out.startsWith(project + path.sep)) excludes.push(`./${path.relative(project, out)}*`);
  // tar follows symbolic links (executors need real files); none may lead out of the project.
  checkSymlinksStayInside(project, excludes);
  const args = ['-czf', tmp, '--dereference', ...excludes.map((e) => `--exclude=${e}`), '-C', project, '.'];
  if (opts.withNode) {
    args.push(
      '-C',
      path.dirname(process.execPath),
      `--transform=s,^${path.basename(process.execPath)}$,${BUNDLED_NODE},`,
      path.basename(process.execPath),
    );
  }
  try {
    await run('tar', args, { timeoutMs: 30 * 60_000 });
    fs.renameSync(tmp, out);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  return { archive: out, bytes: fs.statSync(out).size, withNode: Boolean(opts.withNode) };
}

/**
 * Throws naming the first symbolic link under `project` whose target lies outside it (or does not
 * exist): packing would copy files from elsewhere on this machine into the archive. Paths under a
 * plain `./dir` exclude are not looked at.
 */
function checkSymlinksStayInside(project: string, excludes: string[]): void {
  const root = fs.realpathSync(project);
  const skipped = excludes.filter((e) => e.startsWith('./') && !/[*?[]/.test(e)).map((e) => path.join(project, e.slice(2)));
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (skipped.includes(full)) continue;
      if (entry.isSymbolicLink()) {
        let target: string;
        try {
          target = fs.realpathSync(full);
        } catch {
          throw new Error(
            `tfos pack: ${full} is a symbolic link to nothing (${fs.readlinkSync(full)}); remove it or exclude it (--exclude ./${path.relative(project, full)})`,
          );
        }
        if (target !== root && !target.startsWith(root + path.sep)) {
          throw new Error(
            `tfos pack: ${full} is a symbolic link to ${target}, outside the project ${project}; copy what it points to into the project, or exclude it (--exclude ./${path.relative(project, full)})`,
          );
        }
      } else if (entry.isDirectory()) walk(full);
    }
  };
  walk(project);
}

/** Where a packed project is used from: TFCluster.run's `archive` option. */
export interface ArchiveOption {
  /** URI Spark can fetch: hdfs://..., or a local path on the driver machine (client mode). */
  uri: string;
  /** The project directory the archive was made from (module paths are taken relative to it). */
  projectDir: string;
  /** Directory name in the executor's working directory (default 'tfos-app'). */
  alias?: string;
  /** The archive carries a Node binary (`tfos pack --with-node`). */
  bundledNode?: boolean;
}

/** How trainers start from an unpacked archive: the Spark conf, the trainer argv and the module path. */
export function archiveLaunch(
  archive: ArchiveOption,
  modulePath: string,
): { conf: Record<string, string>; trainerCommand: string[]; module: string } {
  const alias = archive.alias ?? 'tfos-app';
  if (!/^[A-Za-z0-9_.-]+$/.test(alias) || alias === '.' || alias === '..')
    throw new Error(`archive alias '${alias}' must be a plain directory name (not '.' or '..')`);
  const rel = path.relative(path.resolve(archive.projectDir), path.resolve(modulePath));
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new Error(`module ${modulePath} is not inside the packed project ${archive.projectDir}`);
  }
  return {
    conf: { 'spark.archives': `${archive.uri}#${alias}` },
    trainerCommand: [archive.bundledNode ? `${alias}/${BUNDLED_NODE}` : 'node', `${alias}/${TRAINER_IN_PACKAGE}`],
    module: `${alias}/${rel.split(path.sep).join('/')}`,
  };
}
