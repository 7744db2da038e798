/**
 * `tfos setup --gpu`: the GPU build of tfjs-node, in TFOS_HOME beside the CPU build
 * (layout: lib/platform/gpu-build.ts), idempotently:
 *   1. npm installs @tensorflow/tfjs-node-gpu (the version of the project's tfjs-node) with
 *      --ignore-scripts (its installer would download from a host PyPI users often cannot reach);
 *   2. libtensorflow from PyPI's CUDA `tensorflow` wheel of the CPU build's version (tensorflow.ts);
 *   3. the CUDA/cuDNN libraries from the nvidia-* wheels that wheel pins for its `and-cuda` extra,
 *      read from the wheel's own METADATA so the pins always match;
 *   4. the addon built against (2); every CUDA library checked to resolve its dependencies from the
 *      trainers' library path; the package loaded in a child process with that path (TensorFlow's
 *      GPU build runs on the CPU where no device is visible);
 *   5. gpu-build.json written: from then on trainers find the build (TFOS_TFJS=gpu).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, runAllowingFailure } from '../platform/exec';
import { findGpuBuild, GPU_PACKAGE, GpuBuild, gpuBuildPaths, withLibraryPath } from '../platform/gpu-build';
import { Logger } from '../platform/log';
import { TfosPaths } from '../platform/paths';
import { VERSIONS } from '../platform/versions';
import {
  buildAddon,
  extractWheel,
  lastLines,
  obtainWheel,
  patchBinding,
  patchWorthTrying,
  populateDeps,
  probeBackend,
  secondsSince,
  step,
  wheelSpec,
} from './tensorflow';

export interface GpuBuildInfo extends GpuBuild {
  backend: string;
  /** The addon carries our binding patch (lib/stack/binding-patch.ts): TensorFlow's fused ops are reachable. */
  patched: boolean;
  source: 'existing' | 'built';
}

const COMPLETE_MARKER = '.tfos-complete';
/** The NVIDIA driver's library: it comes with the GPU machine's driver, never from a wheel. */
const DRIVER_LIBS = ['libcuda.so.1', 'libcuda.so', 'libnvidia-ml.so.1'];

export async function provisionTensorflowGpu(paths: TfosPaths, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<GpuBuildInfo> {
  const where = gpuBuildPaths({ ...env, TFOS_HOME: paths.home });
  const existing = findGpuBuild({ ...env, TFOS_HOME: paths.home });
  if (existing) {
    const probe = await probeBackend(existing.packageDir, { ...env, LD_LIBRARY_PATH: withLibraryPath(existing, env.LD_LIBRARY_PATH) });
    if (probe.ok && (probe.patched || !patchWorthTrying(existing.packageDir))) {
      return { ...existing, backend: probe.backend!, patched: !!probe.patched, source: 'existing' };
    }
    // Every other step is cached: a rebuild is the addon's build.
    log(`GPU build in ${where.root} ${probe.ok ? 'lacks the binding patch' : `does not load (${probe.detail})`}; building it again`);
  }
  fs.rmSync(where.record, { force: true });

  await installPackage(where.root, where.packageDir, env, log);
  await extractWheel(paths, where.libtensorflow, true, where.packageDir, env, log);
  const wheel = await obtainWheel(paths, wheelSpec(true), env, log);
  const cudaWheels = await provisionCuda(paths, where.cuda, wheel, env, log);
  const libraryPath = libraryFolders(where.cuda);
  await step('check that every CUDA library resolves its dependencies from the library path', () => checkResolvable(libraryPath, env));

  await step('install the CUDA wheel libraries into deps/', async () =>
    populateDeps(where.packageDir, path.join(where.libtensorflow, 'lib'), path.join(where.libtensorflow, 'include')),
  );
  // The same binding patch as the CPU build's, so the fused kernels reach TensorFlow's fused ops here too.
  patchBinding(where.packageDir, log);
  await buildAddon(where.packageDir, env, log);
  const build: GpuBuild = {
    packageDir: where.packageDir,
    libraryPath,
    tfjsNode: VERSIONS.tfjsNode,
    tensorflow: VERSIONS.tensorflowWheel,
    cudaWheels,
  };
  const probe = await probeBackend(where.packageDir, { ...env, LD_LIBRARY_PATH: withLibraryPath(build, env.LD_LIBRARY_PATH) });
  if (!probe.ok) {
    throw new Error(
      `native TensorFlow (GPU build): step 'verify the addon' failed: ${process.execPath} -e <load ${where.packageDir}, conv2d>: ${probe.detail}`,
    );
  }
  fs.writeFileSync(where.record, JSON.stringify(build, null, 2) + '\n');
  log(`GPU build ready: ${where.packageDir} (CUDA libraries in ${libraryPath.length} folders under ${where.cuda})`);
  return { ...build, backend: probe.backend!, patched: !!probe.patched, source: 'built' };
}

/** @tensorflow/tfjs-node-gpu with its dependencies, in an npm prefix of its own. */
async function installPackage(root: string, packageDir: string, env: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  const installed = (() => {
    try {
      return (JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as { version?: string }).version;
    } catch {
      return undefined;
    }
  })();
  if (installed === VERSIONS.tfjsNode) return;
  await step(`npm install ${GPU_PACKAGE}@${VERSIONS.tfjsNode} into ${root}`, async () => {
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(
      path.join(root, 'package.json'),
      JSON.stringify({ private: true, description: 'tfos setup --gpu', dependencies: { [GPU_PACKAGE]: VERSIONS.tfjsNode } }, null, 2) +
        '\n',
    );
    log(`installing ${GPU_PACKAGE}@${VERSIONS.tfjsNode} into ${root} (npm, --ignore-scripts; about 300 MB with tfjs)`);
    const started = Date.now();
    await run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--omit=dev'], { cwd: root, env, timeoutMs: 20 * 60_000 });
    log(`installed (${secondsSince(started)} s)`);
  });
}

interface Pin {
  name: string;
  version: string;
}

/** The nvidia-* requirements of the wheel's `and-cuda` extra, from its METADATA. */
const PINS_SCRIPT = `
import json, re, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
pins = []
for line in z.read(meta).decode('utf8').splitlines():
    if not line.startswith('Requires-Dist:') or 'and-cuda' not in line:
        continue
    m = re.match(r'Requires-Dist:\\s*([A-Za-z0-9_.-]+)\\s*\\(?==([^ ;)]+)', line)
    if m and m.group(1).startswith('nvidia-'):
        pins.append({'name': m.group(1), 'version': m.group(2)})
print(json.dumps(pins))
`;

/** Extracts every file of the nvidia/ tree but headers and Python modules. */
const EXTRACT_CUDA_SCRIPT = `
import os, shutil, sys, zipfile
dest = sys.argv[1]
for whl in sys.argv[2:]:
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            n = info.filename
            if not n.startswith('nvidia/') or n.endswith('/') or '/include/' in n or n.endswith(('.py', '.pyc', '.h')):
                continue
            out = os.path.join(dest, n)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(info) as src, open(out, 'wb') as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
            if (info.external_attr >> 16) & 0o111:
                os.chmod(out, 0o755)
`;

async function provisionCuda(paths: TfosPaths, cudaDir: string, wheel: string, env: NodeJS.ProcessEnv, log: Logger): Promise<string[]> {
  const marker = path.join(cudaDir, COMPLETE_MARKER);
  const python = env.TFOS_PYTHON?.trim() || 'python3';
  const pins = await step(`read the and-cuda pins of ${path.basename(wheel)}`, async () => {
    const res = await run(python, ['-c', PINS_SCRIPT, wheel], { env, timeoutMs: 60_000 });
    const list = JSON.parse(lastLines(res.stdout, 1)) as Pin[];
    if (!list.length) throw new Error(`${wheel} names no nvidia-* requirement for its and-cuda extra`);
    return list;
  });
  const names = pins.map((p) => `${p.name}==${p.version}`);
  if (fs.existsSync(marker)) {
    const done = (JSON.parse(fs.readFileSync(marker, 'utf8')) as { wheels: string[] }).wheels;
    if (JSON.stringify(done) === JSON.stringify(names)) return names;
  }
  const files = await downloadCudaWheels(paths, pins, env, log);
  await step(`extract the CUDA libraries into ${cudaDir}`, async () => {
    const tmp = `${cudaDir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    log(`extracting the CUDA/cuDNN libraries of ${files.length} wheels into ${cudaDir}`);
    const started = Date.now();
    try {
      const res = await runAllowingFailure(python, ['-c', EXTRACT_CUDA_SCRIPT, tmp, ...files], { env, timeoutMs: 20 * 60_000 });
      if (res.code !== 0)
        throw new Error(`exit code ${res.code}: ${python} -c <extract> ${tmp} …\n${lastLines(res.stdout + res.stderr, 20)}`);
      fs.writeFileSync(path.join(tmp, COMPLETE_MARKER), JSON.stringify({ wheels: names, extracted: new Date().toISOString() }) + '\n');
      fs.rmSync(cudaDir, { recursive: true, force: true });
      fs.renameSync(tmp, cudaDir);
      log(`extracted (${secondsSince(started)} s)`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
  return names;
}

/** The pinned wheels, from TFOS_HOME/downloads when there, else one `pip download` for the rest. */
async function downloadCudaWheels(paths: TfosPaths, pins: Pin[], env: NodeJS.ProcessEnv, log: Logger): Promise<string[]> {
  fs.mkdirSync(paths.downloads, { recursive: true });
  const cached = (p: Pin): string | undefined => {
    const prefix = `${p.name.replace(/-/g, '_')}-${p.version}-`;
    const hit = fs.readdirSync(paths.downloads).find((f) => f.startsWith(prefix) && f.endsWith('.whl'));
    return hit && path.join(paths.downloads, hit);
  };
  const missing = pins.filter((p) => !cached(p));
  if (missing.length) {
    await step(`download ${missing.length} nvidia-* wheels from PyPI`, async () => {
      const python = env.TFOS_PYTHON?.trim() || 'python3';
      const tmp = path.join(paths.downloads, `.pip-cuda-${process.pid}`);
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { recursive: true });
      log(`downloading ${missing.map((p) => `${p.name}==${p.version}`).join(' ')} (about 1.9 GB) into ${paths.downloads}`);
      const started = Date.now();
      try {
        // --no-cache-dir: the wheels are kept in downloads/, a second copy in pip's cache would only double the disk.
        const platforms = ['manylinux2014_x86_64', 'manylinux_2_17_x86_64', 'manylinux1_x86_64'].flatMap((p) => ['--platform', p]);
        await run(
          python,
          [
            ...['-m', 'pip', 'download', '--disable-pip-version-check', '--no-cache-dir', '--no-deps', '--only-binary=:all:'],
            ...platforms,
            ...['--python-version', '3.11', '--implementation', 'cp', '--abi', 'cp311', '-d', tmp],
            ...missing.map((p) => `${p.name}==${p.version}`),
          ],
          { env, timeoutMs: 60 * 60_000 },
        );
        for (const f of fs.readdirSync(tmp).filter((f) => f.endsWith('.whl')))
          fs.renameSync(path.join(tmp, f), path.join(paths.downloads, f));
        log(`downloaded (${secondsSince(started)} s)`);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  }
  return pins.map((p) => {
    const f = cached(p);
    if (!f) throw new Error(`native TensorFlow (GPU build): pip download left no wheel for ${p.name}==${p.version} in ${paths.downloads}`);
    return f;
  });
}

/** Every folder of the extracted tree that holds shared libraries. */
function libraryFolders(cudaDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    const entries = fs.readdirSync(dir, { withFileTypes: true });
    if (entries.some((e) => e.isFile() && /\.so(\.\d+)*$/.test(e.name))) out.push(dir);
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
  };
  walk(path.join(cudaDir, 'nvidia'));
  return out.sort();
}

/**
 * ldd each library with the trainers' LD_LIBRARY_PATH: a dependency that is "not found" (other than
 * the NVIDIA driver's own libcuda, which a GPU machine has) would fail only later, on a GPU.
 */
export async function checkResolvable(libraryPath: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const problems: string[] = [];
  const ldEnv = { ...env, LD_LIBRARY_PATH: withLibraryPath({ libraryPath }, env.LD_LIBRARY_PATH) };
  for (const dir of libraryPath) {
    for (const f of fs.readdirSync(dir).filter((n) => /\.so(\.\d+)*$/.test(n))) {
      const file = path.join(dir, f);
      const res = await runAllowingFailure('ldd', [file], { env: ldEnv, timeoutMs: 60_000 });
      for (const line of res.stdout.split('\n')) {
        const m = /^\s*(\S+) => not found/.exec(line);
        if (m && !DRIVER_LIBS.includes(m[1])) problems.push(`${file} needs ${m[1]}`);
      }
    }
  }
  if (problems.length) throw new Error(`not found on the library path: ${problems.join('; ')}`);
}
