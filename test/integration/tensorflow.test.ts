/**
 * Native TensorFlow for @tensorflow/tfjs-node: after provisioning (which builds the addon against
 * PyPI's libtensorflow when the official host is unreachable), a plain `require` gets the
 * 'tensorflow' backend and computes correctly, the addon carries our binding patch (TensorFlow's
 * fused ops reachable); once built, provisioning is a no-op (speed: npm run bench).
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Logger } from '../../lib/platform/log';
import { tfosPaths } from '../../lib/platform/paths';
import { provisionTensorflow, TensorflowInfo } from '../../lib/stack/tensorflow';

const repo = path.resolve(__dirname, '../../..');
const log: Logger = (line) => process.stderr.write(`    [tensorflow] ${line}\n`);

/** conv2d of ones [1,8,8,3] with a ones [3,3,3,1] kernel, 'same' padding, in a fresh process. */
const CHILD = `
const tf = require('@tensorflow/tfjs-node');
const y = tf.conv2d(tf.ones([1, 8, 8, 3]), tf.ones([3, 3, 3, 1]), 1, 'same');
console.log(JSON.stringify({ backend: tf.getBackend(), shape: y.shape, data: Array.from(y.dataSync()) }));
`;

/** Which of TensorFlow's fused ops the native kernels reach, in a fresh process. */
const FUSED_CHILD = `
const tf = require('@tensorflow/tfjs-node');
const { fusedOpsInUse } = require('./dist/lib/tfjs-native/fused-ops');
console.log(fusedOpsInUse(tf, tf.backend()));
`;

describe('native TensorFlow (tfjs-node)', function () {
  this.timeout(30 * 60_000);
  let info: TensorflowInfo;

  before(async () => {
    const prev = process.cwd();
    process.chdir(repo);
    try {
      info = await provisionTensorflow(tfosPaths(), log);
    } finally {
      process.chdir(prev);
    }
  });

  it("require('@tensorflow/tfjs-node') reports the tensorflow backend and computes conv2d", () => {
    expect(info.backend).to.equal('tensorflow');
    expect(['existing', 'official', 'wheel', 'local']).to.include(info.source);
    const out = execFileSync(process.execPath, ['-e', CHILD], {
      cwd: repo,
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { backend: string; shape: number[]; data: number[] };
    expect(r.backend).to.equal('tensorflow');
    expect(r.shape).to.deep.equal([1, 8, 8, 1]);
    // Each output sums a 3x3 window (clipped at the border) over 3 channels of ones.
    const span = (i: number) => (i === 0 || i === 7 ? 2 : 3);
    const expected = Array.from({ length: 64 }, (_, k) => 3 * span(Math.floor(k / 8)) * span(k % 8));
    expect(r.data).to.deep.equal(expected);
    expect(r.data[9]).to.equal(27);
  });

  it("carries tfjs-on-spark's binding patch: list attributes reach TensorFlow's fused ops (oneDNN's on this CPU build)", () => {
    expect(info.patched).to.equal(true);
    const out = execFileSync(process.execPath, ['-e', FUSED_CHILD], {
      cwd: repo,
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(out.trim().split('\n').pop()).to.equal('_MklNativeFusedConv2D, _MklNativeFusedMatMul');
  });

  it("returns source 'existing' once the addon is built: a probe, nothing downloaded or built", async function () {
    this.timeout(60_000);
    const prev = process.cwd();
    process.chdir(repo);
    const lines: string[] = [];
    try {
      const again = await provisionTensorflow(tfosPaths(), (line) => lines.push(line));
      expect(again).to.deep.equal({ backend: 'tensorflow', source: 'existing', packageDir: info.packageDir, patched: true });
      // Every provisioning step logs what it does; the no-op path logs nothing.
      expect(lines).to.deep.equal([]);
    } finally {
      process.chdir(prev);
    }
  });
});
