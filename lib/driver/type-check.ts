/**
 * A `.ts` training module is type-checked once, in the driver, before any Spark work starts: a
 * type error fails TFCluster.run at once with file:line:column, instead of on every executor.
 * It is checked against this package's own types (`import { TFNode, tf } from 'tfjs-on-spark'`
 * resolves here, wherever the module lives) with the user's tsconfig.json when one governs the
 * module's folder, else strict defaults. Trainers then only transpile (node/user-modules.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as TS from 'typescript';
import { PACKAGE_ROOT } from '../node/user-modules';

export class ModuleTypeError extends Error {
  constructor(
    readonly module: string,
    readonly diagnostics: string[],
  ) {
    super(
      `training module ${module} does not type-check (${diagnostics.length} error${diagnostics.length === 1 ? '' : 's'}):\n${diagnostics.slice(0, 10).join('\n')}${diagnostics.length > 10 ? `\n… and ${diagnostics.length - 10} more` : ''}`,
    );
    this.name = 'ModuleTypeError';
  }
}

export function isTypeScriptModule(modulePath: string): boolean {
  return /\.(ts|cts|mts)$/.test(modulePath) && !/\.d\.[cm]?ts$/.test(modulePath);
}

/** Checked files by path, with the modification times they were checked at (a notebook reruns). */
const checked = new Map<string, Array<[string, number]>>();

function mtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

function compilerOptions(ts: typeof TS, moduleDir: string): TS.CompilerOptions {
  const defaults: TS.CompilerOptions = {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    esModuleInterop: true,
    skipLibCheck: true,
  };
  let options = defaults;
  const config = ts.findConfigFile(moduleDir, ts.sys.fileExists);
  if (config) {
    const read = ts.readConfigFile(config, ts.sys.readFile);
    if (!read.error) options = ts.parseJsonConfigFileContent(read.config, ts.sys, path.dirname(config)).options;
  }
  const nodeTypes = [path.join(PACKAGE_ROOT, 'node_modules', '@types'), path.join(PACKAGE_ROOT, '..', '@types')].filter((d) =>
    fs.existsSync(path.join(d, 'node')),
  );
  return {
    ...options,
    noEmit: true,
    skipLibCheck: true,
    // The package's own types and its own tfjs, wherever the module lives.
    paths: {
      ...options.paths,
      'tfjs-on-spark': [path.join(PACKAGE_ROOT, 'dist', 'lib', 'index.d.ts')],
      '@tensorflow/tfjs-node': [path.dirname(require.resolve('@tensorflow/tfjs-node/package.json', { paths: [PACKAGE_ROOT] }))],
    },
    ...(nodeTypes.length && !options.types ? { typeRoots: nodeTypes, types: ['node'] } : {}),
  };
}

/** Type-checks a .ts training module and what it imports; throws ModuleTypeError with the diagnostics. */
export function typeCheckModule(modulePath: string): void {
  const file = path.resolve(modulePath);
  if (/\.mts$/.test(file))
    throw new Error(`training module ${file}: ES-module TypeScript (.mts) is not supported; name it .ts (it runs as CommonJS)`);
  const previous = checked.get(file);
  if (previous && previous.every(([f, t]) => mtime(f) === t)) return;
  const ts = require('typescript') as typeof TS;
  const program = ts.createProgram([file], compilerOptions(ts, path.dirname(file)));
  const errors = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) {
    throw new ModuleTypeError(
      file,
      errors.map((d) => {
        const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
        if (!d.file || d.start === undefined) return `  TS${d.code}: ${text}`;
        const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
        return `  ${d.file.fileName}:${line + 1}:${character + 1} TS${d.code}: ${text}`;
      }),
    );
  }
  // Remember the user's own files (not library declarations) to skip an unchanged re-check.
  const own = program
    .getSourceFiles()
    .map((s) => s.fileName)
    .filter((f) => !f.includes('/node_modules/') && !f.startsWith(PACKAGE_ROOT + '/dist/'));
  checked.set(
    file,
    own.map((f) => [f, mtime(f)]),
  );
}
