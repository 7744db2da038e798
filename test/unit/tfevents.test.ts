/**
 * TensorBoard event files written without TensorFlow: CRC-32C as specified, records framed as
 * TFRecords, and — the real check — TensorBoard's own reader (event_accumulator, from the
 * project's Python environment; pip-installed there when missing) reads every scalar back.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32c, encodeEvent, maskedCrc32c, SummaryWriter, tfRecord } from '../../lib/io/tfevents';
import { defaultArrowPython } from '../../lib/io/dataset-parquet';
import { skipBecause } from '../support/skip';

/** The project's Python with tensorboard importable (installed from PyPI if needed), or undefined. */
function tensorboardPython(): string | undefined {
  const py = defaultArrowPython();
  if (!py) return undefined;
  const has = () => {
    try {
      execFileSync(py, ['-c', 'import tensorboard.backend.event_processing.event_accumulator'], { stdio: 'ignore', timeout: 120_000 });
      return true;
    } catch {
      return false;
    }
  };
  if (has()) return py;
  execFileSync(py, ['-m', 'pip', 'install', '--quiet', 'tensorboard'], { stdio: 'inherit', timeout: 600_000 });
  return has() ? py : undefined;
}

describe('TensorBoard event files', function () {
  this.timeout(600_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-tb-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('CRC-32C and its mask match the published check values', () => {
    expect(crc32c(Buffer.from('123456789'))).to.equal(0xe3069283);
    expect(crc32c(new Uint8Array(32))).to.equal(0x8a9136aa);
    const c = 0xe3069283;
    expect(maskedCrc32c(Buffer.from('123456789'))).to.equal(((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
  });

  it('frames each event as length, masked CRC of the length, data, masked CRC of the data', () => {
    const data = encodeEvent({ wallTime: 1.5, step: 3, scalars: { loss: 0.25 } });
    const rec = tfRecord(data);
    expect(rec.length).to.equal(16 + data.length);
    expect(Number(rec.readBigUInt64LE(0))).to.equal(data.length);
    expect(rec.readUInt32LE(8)).to.equal(maskedCrc32c(rec.subarray(0, 8)));
    expect(rec.subarray(12, 12 + data.length).equals(data)).to.equal(true);
    expect(rec.readUInt32LE(12 + data.length)).to.equal(maskedCrc32c(data));
  });

  it("TensorBoard's reader gets back every scalar at its step", async function () {
    const w = new SummaryWriter(dir, { flushSecs: 0.05 });
    w.scalars(10, { loss: 2.5, learning_rate: 0.001 });
    await w.flush();
    w.scalars(20, { loss: 1.25, learning_rate: 0.001, skipped: Number.NaN });
    w.scalars(20, { test_accuracy: 0.5 });
    w.scalars(1_000_000_007, { loss: 0.5 });
    await w.close();
    expect(() => w.scalars(30, { loss: 1 })).to.throw(/is closed/);
    const files = fs.readdirSync(dir);
    expect(files).to.have.length(1);
    expect(files[0]).to.match(/^events\.out\.tfevents\.\d+\./);

    const py = tensorboardPython();
    if (!py)
      skipBecause(
        this,
        "TensorBoard's Python reader is not installed (the project's Python environment has no tensorboard; run tfos setup)",
      );
    const out = execFileSync(
      py!,
      [
        '-c',
        [
          'import sys, json',
          'from tensorboard.backend.event_processing import event_accumulator as ea',
          "acc = ea.EventAccumulator(sys.argv[1], size_guidance={'scalars': 0}); acc.Reload()",
          "print(json.dumps({t: [[e.step, round(e.value, 6)] for e in acc.Scalars(t)] for t in acc.Tags()['scalars']}))",
        ].join('\n'),
        dir,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' } },
    );
    expect(JSON.parse(out.trim().split('\n').pop()!)).to.deep.equal({
      loss: [
        [10, 2.5],
        [20, 1.25],
        [1_000_000_007, 0.5],
      ],
      learning_rate: [
        [10, 0.001],
        [20, 0.001],
      ],
      test_accuracy: [[20, 0.5]],
    });
  });
});
