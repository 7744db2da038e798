import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TFCluster } from '../../lib/driver/tf-cluster';
import { NotProvisionedError } from '../../lib/platform/not-provisioned';
import { tfosPaths } from '../../lib/platform/paths';
import { resolveSpark, SPARK_ENV_MARKER } from '../../lib/platform/spark';
import { findGpuBuild, gpuTrainerEnv } from '../../lib/platform/gpu-build';
import { gpuPackageEntry, loadTfjs } from '../../lib/platform/tfjs';
import { rejection } from '../support/rejection';

const MODULE = path.resolve(__dirname, '../../../test/fixtures/modules/report-context.js');

describe('platform: the runtime never installs', () => {
  let home: string;
  const saved = { TFOS_HOME: process.env.TFOS_HOME, SPARK_HOME: process.env.SPARK_HOME };
  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-empty-home-'));
    process.env.TFOS_HOME = home;
    delete process.env.SPARK_HOME;
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('resolveSpark on an empty TFOS_HOME says to run `tfos setup`, naming where it looked', () => {
    let err: unknown;
    try {
      resolveSpark();
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(NotProvisionedError);
    expect((err as Error).message)
      .to.contain('run `tfos setup`')
      .and.contain(home);
    // Nothing was created behind the user's back.
    expect(fs.readdirSync(home)).to.deep.equal([]);
  });

  it('an interrupted environment (marker with other packages) is not provisioned either', () => {
    const env = tfosPaths().pythonEnv;
    fs.mkdirSync(env, { recursive: true });
    fs.writeFileSync(path.join(env, SPARK_ENV_MARKER), 'pyspark==0.0.1\n');
    expect(() => resolveSpark()).to.throw(NotProvisionedError, /expected pyspark==/);
  });

  it('TFCluster.run on an unprovisioned machine fails at once with "run `tfos setup`"', async () => {
    const err = await rejection(TFCluster.run({ module: MODULE, numExecutors: 1, via: { local: {} } }));
    expect(err.message).to.contain('run `tfos setup`');
    expect(fs.readdirSync(home).filter((f) => f.startsWith('python'))).to.deep.equal([]);
  });
});

describe('platform: the one tfjs loader', () => {
  it('the package exports tfjs as `tf`, the same module loadTfjs() loads, loaded on first use', () => {
    const pkg = require('../../lib/index') as typeof import('../../lib/index');
    const { tf: real, package: name } = loadTfjs();
    expect(name).to.be.oneOf(['@tensorflow/tfjs-node', '@tensorflow/tfjs']);
    expect(pkg.tf.version).to.deep.equal(real.version);
    expect(pkg.tf.tensor1d([1, 2, 3]).sum().dataSync()[0]).to.equal(6);
    expect('train' in pkg.tf).to.equal(true);
  });

  it('TFOS_TFJS means js, gpu, or unset; anything else is refused, naming the variable', () => {
    expect(() => loadTfjs({ TFOS_TFJS: 'tfjs' })).to.throw(/TFOS_TFJS=tfjs is not understood: set TFOS_TFJS=js .*TFOS_TFJS=gpu/);
  });

  it('TFOS_TFJS=gpu with no GPU build in TFOS_HOME (and no tfjs-node-gpu installed) fails naming `tfos setup --gpu`, never falling back to the CPU build', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-no-gpu-'));
    try {
      expect(() => gpuPackageEntry({ TFOS_HOME: home })).to.throw(/TFOS_TFJS=gpu: no GPU build of tfjs-node here: .*tfos setup --gpu/);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('platform: where trainers find the GPU build', () => {
  let home: string;
  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-gpu-home-'));
  });
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  /** A finished build's record, as `tfos setup --gpu` writes it last. */
  function recordBuild(): { packageDir: string; libraryPath: string[] } {
    const root = path.join(home, 'tfjs-node-gpu-4.22.0');
    const packageDir = path.join(root, 'node_modules', '@tensorflow', 'tfjs-node-gpu');
    const libraryPath = ['cudnn', 'cublas'].map((n) => path.join(home, 'cuda-for-tensorflow-2.15.1', 'nvidia', n, 'lib'));
    for (const d of [packageDir, ...libraryPath]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(packageDir, 'package.json'), '{"main": "index.js"}');
    fs.writeFileSync(
      path.join(root, 'gpu-build.json'),
      JSON.stringify({ packageDir, libraryPath, tfjsNode: '4.22.0', tensorflow: '2.15.1', cudaWheels: [] }),
    );
    return { packageDir, libraryPath };
  }

  it('a run asking for it (env TFOS_TFJS=gpu) gives trainers the build and its CUDA folders first on LD_LIBRARY_PATH', () => {
    const { packageDir, libraryPath } = recordBuild();
    expect(gpuTrainerEnv({ TFOS_TFJS: 'gpu', LD_LIBRARY_PATH: '/opt/mine' }, { TFOS_HOME: home })).to.deep.equal({
      TFOS_TFJS_GPU_PACKAGE: packageDir,
      LD_LIBRARY_PATH: [...libraryPath, '/opt/mine'].join(':'),
    });
    // Runs that do not ask get nothing, even where the build exists.
    expect(gpuTrainerEnv({}, { TFOS_HOME: home })).to.deep.equal({});
    expect(gpuTrainerEnv(undefined, { TFOS_HOME: home })).to.deep.equal({});
  });

  it('a build whose record is missing, or whose folders are gone, is no build', () => {
    expect(findGpuBuild({ TFOS_HOME: home })).to.equal(undefined);
    const { libraryPath } = recordBuild();
    expect(findGpuBuild({ TFOS_HOME: home })?.libraryPath).to.deep.equal(libraryPath);
    fs.rmSync(libraryPath[0], { recursive: true });
    expect(findGpuBuild({ TFOS_HOME: home })).to.equal(undefined);
    expect(gpuTrainerEnv({ TFOS_TFJS: 'gpu' }, { TFOS_HOME: home })).to.deep.equal({});
  });
});
