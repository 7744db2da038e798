/**
 * Native TensorFlow for @tensorflow/tfjs-node (the 'tensorflow' backend), idempotently.
 *
 * npm installs tfjs-node with --ignore-scripts (bootstrap.sh), so its native addon is not built.
 * In order, until one gives a working backend:
 *   1. existing: the package already loads with backend 'tensorflow' (the common, fast case);
 *   2. TFOS_LIBTENSORFLOW_DIR: a libtensorflow the user has (lib/ and include/), addon built against it;
 *   3. official: tfjs-node's own installer (libtensorflow and a prebuilt addon from
 *      storage.googleapis.com), with a short timeout since that host is often unreachable;
 *   4. wheel: the same C library from PyPI's TensorFlow wheel (libtensorflow_cc.so.2 exports the C
 *      and eager C APIs), placed where tfjs-node's binding.gyp expects it, addon built from source.
 * Each result is checked in a child process (backend name and a conv2d with known values).
 * Downloads and extractions are cached under TFOS_HOME; nothing is fetched twice.
 *
 * Every addon we build carries our binding patch (lib/stack/binding-patch.ts), which lets the
 * native kernels reach TensorFlow's fused Conv2D/MatMul ops. An existing addon without it (built
 * before the patch, or tfjs-node's prebuilt one) is patched and rebuilt once, the old addon kept
 * if that fails. Where the patch does not apply, the addon is built as it is and a log line says
 * so: the kernels then use their unfused forms (lib/tfjs-native/bias-act.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyPatch, BINDING_PATCH_FILE, patchDigest } from './binding-patch';
import { run, runAllowingFailure } from '../platform/exec';
import { GPU_PACKAGE } from '../platform/gpu-build';
import { Logger } from '../platform/log';
import { TfosPaths } from '../platform/paths';
import { VERSIONS } from '../platform/versions';

export interface TensorflowInfo {
  backend: string;
  /** 'local': built against TFOS_LIBTENSORFLOW_DIR. */
  source: 'existing' | 'official' | 'wheel' | 'local';
  packageDir: string;
  /** The addon carries our binding patch as it is now: TensorFlow's fused ops and graph functions are reachable. */
  patched: boolean;
}

export interface ProvisionTensorflowOptions {
  env?: NodeJS.ProcessEnv;
  /** tfjs-node flavour to provision; default '@tensorflow/tfjs-node-gpu' when installed and a GPU is visible, else '@tensorflow/tfjs-node'. */
  packageName?: string;
}

export const CPU_PACKAGE = '@tensorflow/tfjs-node';
export { GPU_PACKAGE };
const OFFICIAL_INSTALLER_TIMEOUT_MS = 60_000;
const COMPLETE_MARKER = '.tfos-complete';
/** Written into <package>/deps when we filled it: which libtensorflow it holds. */
const DEPS_MARKER = '.tfos-libtensorflow.json';
/** Headers tfjs-node's binding includes, if its sources cannot be read. */
const DEFAULT_HEADER_SEEDS = ['tensorflow/c/c_api.h', 'tensorflow/c/eager/c_api.h'];

export async function provisionTensorflow(paths: TfosPaths, log: Logger, opts: ProvisionTensorflowOptions = {}): Promise<TensorflowInfo> {
  const env = opts.env ?? process.env;
  const packageName = opts.packageName ?? (await defaultPackage(env));
  const packageDir = resolvePackageDir(packageName);

  const before = await probeBackend(packageDir, env);
  if (before.ok) {
    if (before.patched || !patchWorthTrying(packageDir))
      return { backend: before.backend!, source: 'existing', packageDir, patched: !!before.patched };
    return { backend: before.backend!, source: 'existing', packageDir, patched: await rebuildPatched(packageDir, env, log) };
  }
  log(`${packageName}: native backend not usable yet (${before.detail}); provisioning libtensorflow`);

  const gpu = packageName.includes('gpu');
  const userDir = env.TFOS_LIBTENSORFLOW_DIR?.trim();
  if (userDir) {
    log(`using libtensorflow from TFOS_LIBTENSORFLOW_DIR=${userDir}`);
    const dir = path.resolve(userDir);
    await step('install libtensorflow from TFOS_LIBTENSORFLOW_DIR into deps/', async () =>
      populateDeps(packageDir, path.join(dir, 'lib'), path.join(dir, 'include')),
    );
    patchBinding(packageDir, log);
    await buildAddon(packageDir, env, log);
    return { ...(await verify(packageDir, env)), source: 'local', packageDir };
  }

  const cacheDir = gpu ? `${paths.tensorflow}-cuda` : paths.tensorflow;
  // Once the wheel was needed here, the official host was unreachable; don't wait on it again. And
  // with our libraries in deps/, the installer would only build against them and claim them as its own.
  if (!fs.existsSync(path.join(cacheDir, COMPLETE_MARKER)) && !fs.existsSync(path.join(packageDir, 'deps', DEPS_MARKER))) {
    if (await tryOfficialInstaller(packageDir, env, log)) {
      const probe = await probeBackend(packageDir, env);
      if (probe.ok) {
        const patched = probe.patched || (await rebuildPatched(packageDir, env, log));
        return { backend: probe.backend!, source: 'official', packageDir, patched };
      }
      log(`official installer finished but the backend does not work (${probe.detail}); falling back to the PyPI wheel`);
    }
  }

  await extractWheel(paths, cacheDir, gpu, packageDir, env, log);
  await step('install the wheel libraries into deps/', async () =>
    populateDeps(packageDir, path.join(cacheDir, 'lib'), path.join(cacheDir, 'include')),
  );
  patchBinding(packageDir, log);
  await buildAddon(packageDir, env, log);
  return { ...(await verify(packageDir, env)), source: 'wheel', packageDir };
}

export async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new Error(`native TensorFlow: step '${name}' failed: ${(err as Error).message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------
// Which package, and does it work

async function defaultPackage(env: NodeJS.ProcessEnv): Promise<string> {
  if (!isResolvable(GPU_PACKAGE)) return CPU_PACKAGE;
  return (await hasNvidiaGpu(env)) ? GPU_PACKAGE : CPU_PACKAGE;
}

async function hasNvidiaGpu(env: NodeJS.ProcessEnv): Promise<boolean> {
  try {
    const res = await runAllowingFailure('nvidia-smi', ['-L'], { env, timeoutMs: 15_000 });
    return res.code === 0 && /^GPU \d+/m.test(res.stdout);
  } catch {
    return false;
  }
}

/** Resolved from the user's project (cwd) first, then from tfjs-on-spark itself. */
const RESOLVE_FROM = (): string[] => [process.cwd(), __dirname];

function isResolvable(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`, { paths: RESOLVE_FROM() });
    return true;
  } catch {
    return false;
  }
}

function resolvePackageDir(pkg: string): string {
  try {
    return path.dirname(require.resolve(`${pkg}/package.json`, { paths: RESOLVE_FROM() }));
  } catch (err) {
    throw new Error(
      `native TensorFlow: step 'find ${pkg}' failed: it is not installed (npm install ${pkg} --ignore-scripts): ${(err as Error).message}`,
    );
  }
}

interface Probe {
  ok: boolean;
  /**
   * The binding carries our patch as it is now: a list(string) attribute could be set (a 1×1
   * _FusedMatMul with fused_ops ['BiasAdd'] gave 2·3 + 1) and it has addFunctionDef. An addon
   * built with an earlier patch has the first only, and is rebuilt.
   */
  patched?: boolean;
  backend?: string;
  shape?: number[];
  values?: number[];
  detail: string;
}

/**
 * Loads the package in a child process (a broken addon can crash or poison the loading process)
 * and runs tf.conv2d of ones [1,8,8,3] with a ones 3x3x3x1 kernel, 'same' padding: corners see
 * 2x2 pixels (12), edges 2x3 (18), the interior 3x3 (27).
 */
const PROBE_SCRIPT = `
const out = (o) => console.log('TFOS_PROBE ' + JSON.stringify(o));
let tf;
try { tf = require(process.argv[1]); } catch (e) { out({ error: String((e && e.message) || e).split('\\n')[0] }); process.exit(0); }
try {
  const y = tf.conv2d(tf.ones([1, 8, 8, 3]), tf.ones([3, 3, 3, 1]), 1, 'same');
  const d = y.dataSync();
  let patched = false;
  try {
    const b = tf.backend(), B = b.binding;
    const m = b.executeSingleOutput('_FusedMatMul', [
      { name: 'T', type: B.TF_ATTR_TYPE, value: B.TF_FLOAT },
      { name: 'num_args', type: B.TF_ATTR_INT, value: 1 },
      { name: 'fused_ops', type: B.TF_ATTR_STRING, value: ['BiasAdd'] },
    ], [tf.tensor2d([[2]]), tf.tensor2d([[3]]), tf.tensor1d([1])]);
    patched = m.dataSync()[0] === 7 && typeof B.addFunctionDef === 'function' && typeof B.getAllOpList === 'function';
  } catch (e) { /* the unpatched binding: a string attribute must be a string */ }
  out({ backend: tf.getBackend(), shape: y.shape, values: [d[0], d[1], d[9], d[63]], patched });
} catch (e) { out({ backend: tf.getBackend(), error: String((e && e.message) || e).split('\\n')[0] }); }
`;

export async function probeBackend(packageDir: string, env: NodeJS.ProcessEnv): Promise<Probe> {
  let res;
  try {
    res = await runAllowingFailure(process.execPath, ['-e', PROBE_SCRIPT, packageDir], {
      env: { ...env, TF_CPP_MIN_LOG_LEVEL: env.TF_CPP_MIN_LOG_LEVEL ?? '2' },
      timeoutMs: 120_000,
    });
  } catch (err) {
    return { ok: false, detail: (err as Error).message.split('\n')[0] };
  }
  const line = res.stdout.split('\n').find((l) => l.startsWith('TFOS_PROBE '));
  if (!line) return { ok: false, detail: `probe exited with code ${res.code}: ${lastLines(res.stdout + res.stderr, 5)}` };
  const r = JSON.parse(line.slice('TFOS_PROBE '.length)) as {
    backend?: string;
    shape?: number[];
    values?: number[];
    patched?: boolean;
    error?: string;
  };
  if (r.error) return { ok: false, backend: r.backend, detail: r.error };
  const shapeOk = JSON.stringify(r.shape) === JSON.stringify([1, 8, 8, 1]);
  const valuesOk = JSON.stringify(r.values) === JSON.stringify([12, 18, 27, 12]);
  if (r.backend !== 'tensorflow') return { ok: false, backend: r.backend, detail: `backend is '${r.backend}', not 'tensorflow'` };
  if (!shapeOk || !valuesOk) {
    return {
      ok: false,
      backend: r.backend,
      detail: `conv2d gave shape ${JSON.stringify(r.shape)} values ${JSON.stringify(r.values)}, expected [1,8,8,1] and [12,18,27,12]`,
    };
  }
  return { ok: true, backend: r.backend, shape: r.shape, values: r.values, patched: r.patched === true, detail: 'ok' };
}

export async function verify(packageDir: string, env: NodeJS.ProcessEnv): Promise<{ backend: string; patched: boolean }> {
  const probe = await probeBackend(packageDir, env);
  if (!probe.ok) {
    throw new Error(
      `native TensorFlow: step 'verify the addon' failed: ${process.execPath} -e <load ${packageDir}, conv2d>: ${probe.detail}`,
    );
  }
  return { backend: probe.backend!, patched: !!probe.patched };
}

export function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Building

/** PATH as npm gives lifecycle scripts: every node_modules/.bin from the package up. */
function npmPath(packageDir: string, env: NodeJS.ProcessEnv): string {
  const bins: string[] = [];
  for (let dir = packageDir; ; dir = path.dirname(dir)) {
    const bin = path.join(dir, 'node_modules', '.bin');
    if (fs.existsSync(bin)) bins.push(bin);
    if (path.dirname(dir) === dir) break;
  }
  bins.push(path.dirname(process.execPath));
  return [...bins, env.PATH ?? ''].join(path.delimiter);
}

/** Node's headers next to the running node (e.g. /usr/include/node), so node-gyp needs no download. */
function nodeDir(env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = env.npm_config_nodedir?.trim();
  if (fromEnv) return fromEnv;
  const prefix = path.dirname(path.dirname(process.execPath));
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

function buildEnv(packageDir: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, PATH: npmPath(packageDir, env) };
  const dir = nodeDir(env);
  if (dir) out.npm_config_nodedir = dir;
  return out;
}

/** tfjs-node's installer, as `npm install` would run it; false (never throws) when it fails. */
async function tryOfficialInstaller(packageDir: string, env: NodeJS.ProcessEnv, log: Logger): Promise<boolean> {
  const pkgJsonPath = path.join(packageDir, 'package.json');
  const pkgJson = fs.readFileSync(pkgJsonPath, 'utf8');
  const script = (JSON.parse(pkgJson) as { scripts?: Record<string, string> }).scripts?.install ?? 'node scripts/install.js';
  const childEnv = buildEnv(packageDir, env);
  delete childEnv.TFJS_NODE_CDN_STORAGE;
  log(
    `trying tfjs-node's installer (${script}; libtensorflow from storage.googleapis.com, ${OFFICIAL_INSTALLER_TIMEOUT_MS / 1000} s limit)`,
  );
  const started = Date.now();
  let ok = false;
  let why = '';
  try {
    const res = await runAllowingFailure('sh', ['-c', script], {
      cwd: packageDir,
      env: childEnv,
      timeoutMs: OFFICIAL_INSTALLER_TIMEOUT_MS,
    });
    ok = res.code === 0;
    if (!ok)
      why = `exit code ${res.code}: ${
        lastLines(res.stdout + res.stderr, 20)
          .split('\n')
          .find((l) => /Error|ENOTFOUND|failed/.test(l)) ?? lastLines(res.stderr, 1)
      }`;
  } catch (err) {
    why = (err as Error).message.split('\n')[0];
  }
  // The installer rewrites package.json's binary.package_name and restores it only on success.
  if (!ok && fs.readFileSync(pkgJsonPath, 'utf8') !== pkgJson) fs.writeFileSync(pkgJsonPath, pkgJson);
  log(
    ok
      ? `tfjs-node's installer succeeded (${secondsSince(started)} s)`
      : `tfjs-node's installer failed (${secondsSince(started)} s): ${why.trim()}`,
  );
  return ok;
}

export async function buildAddon(packageDir: string, env: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  await step('build the tfjs-node addon from source', async () => {
    const preGypDir = path.dirname(require.resolve('@mapbox/node-pre-gyp/package.json', { paths: [packageDir] }));
    const childEnv: NodeJS.ProcessEnv = { ...buildEnv(packageDir, env), npm_config_build_from_source: 'true' };
    log(
      `building the tfjs-node addon against deps/ (node-gyp, nodedir=${childEnv.npm_config_nodedir ?? 'downloaded headers'}; about a minute)`,
    );
    const started = Date.now();
    await run(process.execPath, [path.join(preGypDir, 'bin', 'node-pre-gyp'), 'install', '--build-from-source'], {
      cwd: packageDir,
      env: childEnv,
      timeoutMs: 30 * 60_000,
    });
    log(`addon built (${secondsSince(started)} s)`);
  });
}

// ---------------------------------------------------------------------------------------------
// The binding patch (lib/stack/binding-patch.ts)

/** Written into the package when patching failed: which patch, and why (not retried for the same patch). */
const PATCH_MARKER = '.tfos-binding-patch.json';
const FUSED_OFF = "TensorFlow's fused Conv2D/MatMul stay off; the native kernels use their unfused forms";

function readPatch(): string {
  return fs.readFileSync(BINDING_PATCH_FILE, 'utf8');
}

/** Patches the binding's sources; false (with a log line naming the reason) when the patch does not apply. */
export function patchBinding(packageDir: string, log: Logger): boolean {
  let text = '';
  try {
    text = readPatch();
    const outcome = applyPatch(packageDir, text);
    if (outcome === 'applied') log(`applied ${path.basename(BINDING_PATCH_FILE)} to ${path.join(packageDir, 'binding')}`);
    fs.rmSync(path.join(packageDir, PATCH_MARKER), { force: true });
    return true;
  } catch (err) {
    const why = (err as Error).message;
    log(`binding patch not applied, building tfjs-node's binding unpatched: ${why}; ${FUSED_OFF}`);
    if (text) writeFileAtomic(path.join(packageDir, PATCH_MARKER), JSON.stringify({ patch: patchDigest(text), failed: why }) + '\n');
    return false;
  }
}

/** An unpatched addon is worth patching when its sources are there and this patch has not failed on them before. */
export function patchWorthTrying(packageDir: string): boolean {
  if (!fs.existsSync(path.join(packageDir, 'binding.gyp')) || !fs.existsSync(BINDING_PATCH_FILE)) return false;
  try {
    const prev = JSON.parse(fs.readFileSync(path.join(packageDir, PATCH_MARKER), 'utf8')) as { patch?: string };
    return prev.patch !== patchDigest(readPatch());
  } catch {
    return true;
  }
}

/** The built addons (lib/napi-v<n>/<name>.node), moved aside by rename so a process that has one loaded keeps it. */
function addonFiles(packageDir: string): string[] {
  const lib = path.join(packageDir, 'lib');
  if (!fs.existsSync(lib)) return [];
  return fs
    .readdirSync(lib)
    .filter((d) => d.startsWith('napi-v'))
    .flatMap((d) =>
      fs
        .readdirSync(path.join(lib, d))
        .filter((f) => f.endsWith('.node'))
        .map((f) => path.join(lib, d, f)),
    );
}

/**
 * Patches a working but unpatched addon's sources and rebuilds it; on any failure the old addon
 * and sources come back and a log line says why. Returns whether the addon now sets list attributes.
 */
async function rebuildPatched(packageDir: string, env: NodeJS.ProcessEnv, log: Logger): Promise<boolean> {
  const source = path.join(packageDir, 'binding', 'tfjs_backend.cc');
  const original = fs.readFileSync(source, 'utf8');
  log(`${packageDir}: the addon lacks tfjs-on-spark's binding patch; patching and rebuilding it once`);
  if (!patchBinding(packageDir, log)) return false;
  const kept = addonFiles(packageDir).map((f) => ({ f, backup: `${f}.tfos-unpatched` }));
  for (const k of kept) fs.renameSync(k.f, k.backup);
  try {
    // A clean build: node_modules may be a hard-linked copy whose objects other checkouts share.
    for (const d of fs.readdirSync(packageDir).filter((n) => n.startsWith('build-tmp-napi-v')))
      fs.rmSync(path.join(packageDir, d), { recursive: true, force: true });
    await buildAddon(packageDir, env, log);
    const probe = await probeBackend(packageDir, env);
    if (!probe.ok || !probe.patched) throw new Error(probe.ok ? 'the rebuilt addon still cannot set list attributes' : probe.detail);
    for (const k of kept) fs.rmSync(k.backup, { force: true });
    return true;
  } catch (err) {
    for (const f of addonFiles(packageDir)) fs.rmSync(f, { force: true });
    for (const k of kept) fs.renameSync(k.backup, k.f);
    writeFileAtomic(source, original);
    const why = (err as Error).message.split('\n')[0];
    writeFileAtomic(path.join(packageDir, PATCH_MARKER), JSON.stringify({ patch: patchDigest(readPatch()), failed: why }) + '\n');
    log(`rebuilding the patched addon failed (${why}); the unpatched addon is back in place; ${FUSED_OFF}`);
    return false;
  }
}

function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tfos-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------------------------
// deps/: what binding.gyp links against and the addon's rpath ($ORIGIN/../../deps/lib) loads

const MAIN_LIB_CANDIDATES = ['libtensorflow_cc.so.2', 'libtensorflow.so.2', 'libtensorflow.so', 'libtensorflow_cc.so'];
const FRAMEWORK_LIB_CANDIDATES = ['libtensorflow_framework.so.2', 'libtensorflow_framework.so'];
const EXPECTED = VERSIONS.libtensorflowExpectedByTfjs;

/**
 * Fills <package>/deps/lib and deps/include. Libraries are hard links (copies across file
 * systems), so the addon keeps working if TFOS_HOME is removed and `tfos pack` (tar
 * --dereference) stores each library once. Names: -ltensorflow(_framework) for the linker,
 * libtensorflow.so.2.9.1 (what tfjs-node's installer checks before downloading), and the sonames
 * the addon records (libtensorflow_cc.so.2 / libtensorflow.so.2, libtensorflow_framework.so.2).
 */
export function populateDeps(packageDir: string, libDir: string, includeDir: string): void {
  if (process.platform !== 'linux') throw new Error(`only Linux is supported (this is ${process.platform})`);
  const find = (names: string[]): string => {
    const hit = names.map((n) => path.join(libDir, n)).find((p) => fs.existsSync(p));
    if (!hit) throw new Error(`${libDir} has none of ${names.join(', ')}`);
    return hit;
  };
  const main = find(MAIN_LIB_CANDIDATES);
  const framework = find(FRAMEWORK_LIB_CANDIDATES);
  const seeds = bindingHeaderSeeds(packageDir);
  const headers = headerClosure(includeDir, seeds);

  const deps = path.join(packageDir, 'deps');
  const depsLib = path.join(deps, 'lib');
  const depsInclude = path.join(deps, 'include');
  fs.rmSync(depsLib, { recursive: true, force: true });
  fs.rmSync(depsInclude, { recursive: true, force: true });
  fs.mkdirSync(depsLib, { recursive: true });

  const mainNames = ['libtensorflow.so', 'libtensorflow.so.2', `libtensorflow.so.${EXPECTED}`];
  if (path.basename(main).startsWith('libtensorflow_cc')) mainNames.unshift('libtensorflow_cc.so.2');
  const frameworkNames = ['libtensorflow_framework.so', 'libtensorflow_framework.so.2', `libtensorflow_framework.so.${EXPECTED}`];
  for (const [src, names] of [
    [main, mainNames],
    [framework, frameworkNames],
  ] as const) {
    const first = path.join(depsLib, names[0]);
    linkOrCopy(fs.realpathSync(src), first);
    for (const name of names.slice(1)) fs.linkSync(first, path.join(depsLib, name));
  }
  for (const rel of headers) {
    const to = path.join(depsInclude, rel);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(path.join(includeDir, rel), to);
  }
  fs.writeFileSync(
    path.join(deps, DEPS_MARKER),
    JSON.stringify({ lib: fs.realpathSync(main), framework: fs.realpathSync(framework), headers: headers.length }) + '\n',
  );
}

function linkOrCopy(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
  }
}

/** The TensorFlow headers tfjs-node's binding sources include. */
export function bindingHeaderSeeds(packageDir: string): string[] {
  const seeds = new Set<string>();
  try {
    const dir = path.join(packageDir, 'binding');
    for (const f of fs.readdirSync(dir)) {
      if (!/\.(cc|h)$/.test(f)) continue;
      for (const m of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/^\s*#\s*include\s*"((?:tensorflow|tsl)\/[^"]+)"/gm))
        seeds.add(m[1]);
    }
  } catch {
    /* no binding sources: fall back */
  }
  return seeds.size ? [...seeds].sort() : DEFAULT_HEADER_SEEDS;
}

const INCLUDE_RE = /^\s*#\s*include\s*"([^"]+)"/gm;

/** Every header reachable from the seeds through #include "..." (relative to the file, then the root). */
function headerClosure(includeDir: string, seeds: string[]): string[] {
  const found: string[] = [];
  const seen = new Set<string>();
  const todo = [...seeds];
  while (todo.length) {
    const rel = todo.pop()!;
    if (seen.has(rel)) continue;
    seen.add(rel);
    const file = path.join(includeDir, rel);
    if (!fs.existsSync(file)) {
      if (seeds.includes(rel)) throw new Error(`${includeDir} lacks ${rel}`);
      continue; // system or optional header
    }
    found.push(rel);
    for (const m of fs.readFileSync(file, 'utf8').matchAll(INCLUDE_RE)) {
      const local = path.normalize(path.join(path.dirname(rel), m[1]));
      todo.push(fs.existsSync(path.join(includeDir, local)) ? local : path.normalize(m[1]));
    }
  }
  return found.sort();
}

// ---------------------------------------------------------------------------------------------
// The PyPI wheel

export interface WheelSpec {
  dist: string;
  platform: string;
  arch: string;
}

export function wheelSpec(gpu: boolean): WheelSpec {
  if (process.platform !== 'linux')
    throw new Error(`native TensorFlow: the PyPI fallback supports Linux only (this is ${process.platform}); set TFOS_LIBTENSORFLOW_DIR`);
  if (os.arch() === 'x64') return { dist: gpu ? 'tensorflow' : 'tensorflow-cpu', platform: 'manylinux2014_x86_64', arch: 'x86_64' };
  if (os.arch() === 'arm64') return { dist: 'tensorflow', platform: 'manylinux2014_aarch64', arch: 'aarch64' };
  throw new Error(`native TensorFlow: no TensorFlow wheel for ${os.arch()}; set TFOS_LIBTENSORFLOW_DIR`);
}

function cachedWheel(downloads: string, spec: WheelSpec): string | undefined {
  const prefix = `${spec.dist.replace(/-/g, '_')}-${VERSIONS.tensorflowWheel}-`;
  try {
    const hit = fs
      .readdirSync(downloads)
      .filter((f) => f.startsWith(prefix) && f.endsWith('.whl') && f.includes(spec.arch))
      .sort()[0];
    return hit ? path.join(downloads, hit) : undefined;
  } catch {
    return undefined;
  }
}

export async function obtainWheel(paths: TfosPaths, spec: WheelSpec, env: NodeJS.ProcessEnv, log: Logger): Promise<string> {
  const given = env.TFOS_TENSORFLOW_WHEEL?.trim();
  if (given) {
    if (!fs.existsSync(given)) throw new Error(`native TensorFlow: TFOS_TENSORFLOW_WHEEL=${given} does not exist`);
    return path.resolve(given);
  }
  const cached = cachedWheel(paths.downloads, spec);
  if (cached) return cached;
  return step(`download the ${spec.dist} ${VERSIONS.tensorflowWheel} wheel from PyPI`, async () => {
    const python = env.TFOS_PYTHON?.trim() || 'python3';
    const tmp = path.join(paths.downloads, `.pip-${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    log(`downloading ${spec.dist}==${VERSIONS.tensorflowWheel} (about 200 MB, pip's cache is used) into ${paths.downloads}`);
    const started = Date.now();
    try {
      // Any CPython wheel of this version carries the same C library; pin one so any python3 with pip can fetch it.
      await run(
        python,
        [
          '-m',
          'pip',
          'download',
          '--disable-pip-version-check',
          '--no-deps',
          '--only-binary=:all:',
          '--platform',
          spec.platform,
          '--python-version',
          '3.11',
          '--implementation',
          'cp',
          '--abi',
          'cp311',
          '-d',
          tmp,
          `${spec.dist}==${VERSIONS.tensorflowWheel}`,
        ],
        { env, timeoutMs: 30 * 60_000 },
      );
      const whl = fs.readdirSync(tmp).find((f) => f.endsWith('.whl'));
      if (!whl) throw new Error(`pip download left no .whl in ${tmp}`);
      const dest = path.join(paths.downloads, whl);
      fs.renameSync(path.join(tmp, whl), dest);
      log(`downloaded ${whl} (${secondsSince(started)} s)`);
      return dest;
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}

/** Extracts from the wheel (a zip) only the two libraries and the headers the binding needs. */
const EXTRACT_SCRIPT = `
import json, os, re, shutil, sys, zipfile
whl, dest, seeds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    z = zipfile.ZipFile(whl)
except (zipfile.BadZipFile, OSError) as e:
    print('TFOS_BAD_WHEEL %s' % e); sys.exit(3)
names = set(z.namelist())
libs = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2']
for lib in libs:
    if 'tensorflow/' + lib not in names:
        print('wheel has no tensorflow/%s' % lib); sys.exit(4)
root = 'tensorflow/include/'
inc = re.compile(r'^\\s*#\\s*include\\s*"([^"]+)"', re.M)
todo, seen, found = list(seeds), set(), []
while todo:
    h = todo.pop()
    if h in seen: continue
    seen.add(h)
    if root + h not in names:
        if h in seeds:
            print('wheel has no %s%s' % (root, h)); sys.exit(5)
        continue
    found.append(h)
    for i in inc.findall(z.read(root + h).decode('utf8', 'replace')):
        local = os.path.normpath(os.path.join(os.path.dirname(h), i))
        todo.append(local if root + local in names else os.path.normpath(i))
def extract(member, out):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with z.open(member) as src, open(out, 'wb') as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
for lib in libs:
    extract('tensorflow/' + lib, os.path.join(dest, 'lib', lib))
for h in found:
    extract(root + h, os.path.join(dest, 'include', h))
print(json.dumps({'headers': len(found)}))
`;

export async function extractWheel(
  paths: TfosPaths,
  cacheDir: string,
  gpu: boolean,
  packageDir: string,
  env: NodeJS.ProcessEnv,
  log: Logger,
): Promise<void> {
  const marker = path.join(cacheDir, COMPLETE_MARKER);
  if (fs.existsSync(marker)) return;
  const spec = wheelSpec(gpu);
  fs.mkdirSync(paths.downloads, { recursive: true });
  const wheel = await obtainWheel(paths, spec, env, log);
  await step(`extract libtensorflow from ${path.basename(wheel)}`, async () => {
    const python = env.TFOS_PYTHON?.trim() || 'python3';
    const tmp = `${cacheDir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    log(`extracting libtensorflow_cc.so.2, libtensorflow_framework.so.2 and headers into ${cacheDir}`);
    const started = Date.now();
    try {
      const res = await runAllowingFailure(python, ['-c', EXTRACT_SCRIPT, wheel, tmp, JSON.stringify(bindingHeaderSeeds(packageDir))], {
        env,
        timeoutMs: 10 * 60_000,
      });
      if (res.code !== 0) {
        // A truncated download would fail here forever; drop it (unless the user gave it) so the next run fetches it again.
        if (res.stdout.includes('TFOS_BAD_WHEEL') && !env.TFOS_TENSORFLOW_WHEEL?.trim()) fs.rmSync(wheel, { force: true });
        throw new Error(`exit code ${res.code}: ${python} -c <extract> ${wheel} ${tmp}\n${lastLines(res.stdout + res.stderr, 20)}`);
      }
      fs.writeFileSync(
        path.join(tmp, COMPLETE_MARKER),
        JSON.stringify({ wheel: path.basename(wheel), extracted: new Date().toISOString(), ...JSON.parse(lastLines(res.stdout, 1)) }) +
          '\n',
      );
      fs.rmSync(cacheDir, { recursive: true, force: true });
      fs.renameSync(tmp, cacheDir);
      log(`extracted (${secondsSince(started)} s)`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}

export function secondsSince(t: number): string {
  return ((Date.now() - t) / 1000).toFixed(1);
}
