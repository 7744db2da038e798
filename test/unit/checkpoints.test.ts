/**
 * Checkpoints: what is saved loads back exactly; only the newest `keep` stay; and a checkpoint
 * whose writing was interrupted at any point (staging directory, missing manifest, short or
 * corrupt tensors) is never loaded — the newest intact one is.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointError, checkpointName, Checkpoints, HostTensor } from '../../lib/io/checkpoints';
import { LocalFs } from '../../lib/io/dataset-fs';
import { rejection } from '../support/rejection';

function tensors(seed: number): Record<string, HostTensor[]> {
  return {
    weights: [
      { name: 'conv1/kernel', shape: [2, 3], dtype: 'float32', values: Float32Array.from([1, 2, 3, 4, 5, 6], (v) => v * seed) },
      { name: 'conv1/bias', shape: [3], dtype: 'float32', values: Float32Array.of(seed, -seed, 0.5) },
    ],
    optimizer: [{ name: 'iter', shape: [], dtype: 'int32', values: Int32Array.of(seed * 10) }],
  };
}

describe('Checkpoints (local disk)', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfos-ckpt-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('round-trips tensors (float32 and int32) and the JSON state, and finds the newest', async () => {
    const c = new Checkpoints(dir);
    expect(await c.latest()).to.equal(undefined);
    await c.save(10, tensors(1), { step: 10, history: [1, 2] });
    const uri = await c.save(20, tensors(2), { step: 20, history: [1, 2, 3] });
    expect(uri).to.equal(`file://${path.join(dir, 'ckpt-00000020')}`);
    const cp = await c.latest<{ step: number; history: number[] }>();
    expect(cp!.step).to.equal(20);
    expect(cp!.state).to.deep.equal({ step: 20, history: [1, 2, 3] });
    expect(cp!.groups.weights.map((t) => [t.name, t.shape, Array.from(t.values)])).to.deep.equal([
      ['conv1/kernel', [2, 3], [2, 4, 6, 8, 10, 12]],
      ['conv1/bias', [3], [2, -2, 0.5]],
    ]);
    expect(cp!.groups.optimizer[0].values).to.be.instanceOf(Int32Array);
    expect(Array.from(cp!.groups.optimizer[0].values)).to.deep.equal([20]);
  });

  it('keeps only the newest `keep` checkpoints', async () => {
    const c = new Checkpoints(dir, { keep: 2 });
    for (const step of [5, 10, 15, 20]) await c.save(step, tensors(step));
    expect(await c.steps()).to.deep.equal([20, 15]);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['ckpt-00000015', 'ckpt-00000020']);
  });

  it('never loads a checkpoint interrupted mid-write: falls back to the newest intact one', async () => {
    const skipped: string[] = [];
    const c = new Checkpoints(dir, { onSkip: (uri, why) => skipped.push(`${path.basename(uri)}: ${why}`) });
    await c.save(10, tensors(1));
    const good = fs.readFileSync(path.join(dir, checkpointName(10), 'tensors.bin'));
    // Killed before the rename: only a staging directory (ignored by name).
    fs.mkdirSync(path.join(dir, '.ckpt-00000050.tmp-deadbeef'));
    fs.writeFileSync(path.join(dir, '.ckpt-00000050.tmp-deadbeef', 'tensors.bin'), good.subarray(0, 7));
    // Directories with the final name but broken contents (e.g. copied by hand, or a file system without atomic rename).
    fs.mkdirSync(path.join(dir, checkpointName(40)));
    fs.writeFileSync(path.join(dir, checkpointName(40), 'tensors.bin'), good); // no manifest
    fs.cpSync(path.join(dir, checkpointName(10)), path.join(dir, checkpointName(30)), { recursive: true });
    const m30 = JSON.parse(fs.readFileSync(path.join(dir, checkpointName(30), 'checkpoint.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, checkpointName(30), 'checkpoint.json'), JSON.stringify({ ...m30, step: 30 }));
    fs.truncateSync(path.join(dir, checkpointName(30), 'tensors.bin'), good.length - 4); // short tensors
    fs.cpSync(path.join(dir, checkpointName(30)), path.join(dir, checkpointName(20)), { recursive: true });
    fs.writeFileSync(path.join(dir, checkpointName(20), 'checkpoint.json'), JSON.stringify({ ...m30, step: 20 }));
    const flipped = Buffer.from(good);
    flipped[0] ^= 0xff;
    fs.writeFileSync(path.join(dir, checkpointName(20), 'tensors.bin'), flipped); // right size, wrong bytes

    const cp = await c.latest();
    expect(cp!.step).to.equal(10);
    expect(skipped).to.have.length(3);
    expect(skipped[0]).to.match(/^ckpt-00000040: .*has no readable checkpoint\.json/);
    expect(skipped[1]).to.match(/^ckpt-00000030: .*tensors\.bin has \d+ bytes, the manifest says \d+/);
    expect(skipped[2]).to.match(/^ckpt-00000020: .*does not match its SHA-256/);
    const err = await rejection(c.read(30));
    expect(err).to.be.instanceOf(CheckpointError);
    expect((err as CheckpointError).path).to.equal(`file://${path.join(dir, checkpointName(30))}`);
  });

  it('a save that fails part-way leaves the previous checkpoints as they were and no staging directory', async () => {
    const c = new Checkpoints(dir);
    await c.save(10, tensors(1));
    const local = c.fs as LocalFs;
    const original = local.writeFile.bind(local);
    local.writeFile = async (p: string, data: Uint8Array) => {
      if (p.endsWith('checkpoint.json')) throw new Error('disk full (simulated)');
      return original(p, data);
    };
    const err = await rejection(c.save(20, tensors(2)));
    expect(err.message).to.match(/writing checkpoint file:\/\/.*ckpt-00000020 failed: disk full \(simulated\)/);
    expect(fs.readdirSync(dir)).to.deep.equal(['ckpt-00000010']);
    expect((await c.latest())!.step).to.equal(10);
  });

  it('names the problem for bad input', async () => {
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    expect((await rejection(new Checkpoints(path.join(dir, 'file')).steps())).message).to.match(
      /checkpoint location file:\/\/.*\/file is a file, not a directory/,
    );
    expect(() => new Checkpoints(dir, { keep: 0 })).to.throw(/keep must be an integer >= 1/);
    expect((await rejection(new Checkpoints(dir).save(-1, tensors(1)))).message).to.match(/step must be an integer >= 0/);
    const bad = { weights: [{ name: 'w', shape: [2, 2], dtype: 'float32' as const, values: new Float32Array(3) }] };
    expect((await rejection(new Checkpoints(dir).save(1, bad))).message).to.match(/tensor 'w' \(weights\) has 3 values for shape \[2,2\]/);
  });
});
