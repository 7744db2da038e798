/**
 * How a trainer loads the user's training module, wherever it lives:
 *  - `.ts` / `.cts` modules run as they are: each file is transpiled to CommonJS when required
 *    (TypeScript's own transpiler; the driver has type-checked it before submitting, see
 *    driver/type-check.ts);
 *  - one tfjs-on-spark and one tfjs engine per trainer: `require('tfjs-on-spark')` and
 *    `require('@tensorflow/tfjs-node' | '@tensorflow/tfjs')` from a user module resolve to this
 *    package and its own copies, even from a folder outside the project or with other copies
 *    installed beside it (two engines would each hold their own tensors and backend);
 *  - with TFOS_TFJS=gpu, `@tensorflow/tfjs-node` and `-gpu` both resolve to the GPU build
 *    (lib/platform/gpu-build.ts), whose own `require('@tensorflow/tfjs')` gets this package's copy:
 *    a module written for tfjs-node runs unchanged on the GPU build.
 */
import Module from 'node:module';
import * as path from 'node:path';
import { GPU_PACKAGE } from '../platform/gpu-build';
import { gpuPackageEntry, tfjsChoice } from '../platform/tfjs';

/** The package root (…/tfjs-on-spark), from this file's place in dist/lib/node/. */
export const PACKAGE_ROOT = path.resolve(__dirname, '../../..');

const SHARED = ['@tensorflow/tfjs-node', GPU_PACKAGE, '@tensorflow/tfjs', '@tensorflow/tfjs-core', '@tensorflow/tfjs-layers'];
const NATIVE = ['@tensorflow/tfjs-node', GPU_PACKAGE];

type Resolver = (request: string, parent: unknown, isMain: boolean, options?: unknown) => string;
type Loader = (module: NodeModule & { _compile(code: string, filename: string): void }, filename: string) => void;

let installed = false;

/** This package's own resolution of a shared request (throws when it is not installed here). */
function ownCopy(request: string): string | undefined {
  if (request === 'tfjs-on-spark') return path.join(PACKAGE_ROOT, 'dist', 'lib', 'index.js');
  if (NATIVE.includes(request) && tfjsChoice() === 'gpu') return gpuPackageEntry();
  if (SHARED.includes(request)) {
    try {
      return require.resolve(request, { paths: [PACKAGE_ROOT] });
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Transpiles one TypeScript file to CommonJS, with an inline source map for stack traces. */
export function transpileTs(source: string, fileName: string): string {
  // Loaded only when a .ts module is met: plain .js modules never pay for the compiler.
  const ts = require('typescript') as typeof import('typescript');
  const out = ts.transpileModule(source, {
    fileName,
    reportDiagnostics: true,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      inlineSourceMap: true,
      inlineSources: true,
    },
  });
  const errors = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) {
    const d = errors[0];
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    throw new SyntaxError(
      `${fileName}${where ? `:${where.line + 1}:${where.character + 1}` : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
    );
  }
  return out.outputText;
}

/** Installs the hooks once per process (the trainer calls this before loading the user's module). */
export function installUserModuleHooks(): void {
  if (installed) return;
  installed = true;
  const M = Module as unknown as { _resolveFilename: Resolver; _extensions: Record<string, Loader> };
  const resolve = M._resolveFilename;
  M._resolveFilename = function (request, parent, isMain, options) {
    return ownCopy(request) ?? resolve.call(this, request, parent, isMain, options);
  };
  const load: Loader = (module, filename) => {
    const fs = require('node:fs') as typeof import('node:fs');
    module._compile(transpileTs(fs.readFileSync(filename, 'utf8'), filename), filename);
  };
  for (const ext of ['.ts', '.cts']) M._extensions[ext] ??= load;
}

let esmInstalled = false;

/** Node 20.6+: the same redirection for ESM user modules (import 'tfjs-on-spark' from anywhere). */
export function installEsmHooks(): void {
  if (esmInstalled) return;
  esmInstalled = true;
  const register = (Module as unknown as { register?: (specifier: string, parentURL?: string) => void }).register;
  if (register) {
    const map: Record<string, string> = {};
    const { pathToFileURL } = require('node:url') as typeof import('node:url');
    // ESM importers get the package's ESM entry (the same objects as require gives).
    map['tfjs-on-spark'] = pathToFileURL(path.join(PACKAGE_ROOT, 'esm', 'index.mjs')).href;
    for (const r of SHARED) {
      const file = ownCopy(r);
      if (file) map[r] = pathToFileURL(file).href;
    }
    const hooks = `const map = ${JSON.stringify(map)};
export async function resolve(specifier, context, next) {
  return map[specifier] ? { url: map[specifier], shortCircuit: true } : next(specifier, context);
}`;
    register(`data:text/javascript,${encodeURIComponent(hooks)}`);
  }
}
