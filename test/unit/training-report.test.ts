/**
 * What a user watches during and after a run: the driver's one progress line for the cluster
 * (redrawn on a terminal, periodic plain lines otherwise) and the training plot (a valid PNG
 * rendered from a vega-lite spec).
 */
import { expect } from 'chai';
import { renderTrainingPlot, trainingPlotSpec } from '../../lib/io/training-plot';
import { fmtDuration, TrainingProgress } from '../../lib/driver/training-progress';

class Sink {
  text = '';
  constructor(
    readonly isTTY: boolean,
    readonly columns = 120,
  ) {}
  write(s: string) {
    this.text += s;
    return true;
  }
}

describe('training progress and plot', function () {
  this.timeout(60_000);

  it('shows step/total, epoch, global images/s, loss, last test accuracy and ETA in one line', () => {
    let now = 0;
    const p = new TrainingProgress({ out: new Sink(false), logOut: new Sink(false), now: () => now });
    p.update({ step: 100, totalSteps: 1000, epoch: 0.5, epochs: 5, imagesPerSec: 812.4, loss: 1.23456 }, 'chief:0');
    now = 10_000;
    p.update(
      { step: 200, totalSteps: 1000, epoch: 1, epochs: 5, imagesPerSec: 790, loss: 1.1, testAccuracy: 0.6123, testImages: 10000 },
      'chief:0',
    );
    const line = p.line(140);
    expect(line).to.match(/^\[█+░+\] 200\/1000 steps · epoch 1\/5 · 790 img\/s · loss 1\.100 · test acc 61\.2% · ETA 1m20s$/);
  });

  it('takes the step from the chief and the test accuracy from any node (an evaluator)', () => {
    const p = new TrainingProgress({ out: new Sink(false), logOut: new Sink(false), now: () => 0 });
    p.update({ step: 50, totalSteps: 100, loss: 2 }, 'chief:0');
    p.update({ step: 40, testAccuracy: 0.25 }, 'evaluator:0');
    expect(p.line()).to.match(/50\/100 steps · loss 2\.000 · test acc 25\.0%/);
  });

  it('redraws in place on a terminal, printing log lines above the bar', () => {
    const out = new Sink(true, 80);
    const logs = new Sink(false);
    let now = 0;
    const p = new TrainingProgress({ out, logOut: logs, now: () => now });
    p.update({ step: 1, totalSteps: 10 }, 'chief:0');
    p.log('worker:1 | hello', out);
    now = 1000;
    p.update({ step: 2, totalSteps: 10 }, 'chief:0');
    p.finish();
    expect(out.text).to.include('\r\x1b[2K[');
    expect(out.text).to.include('worker:1 | hello\n');
    expect(out.text.endsWith('\n')).to.equal(true);
    expect(out.text.split('\n').every((l) => l.length < 200)).to.equal(true);
  });

  it('prints plain periodic lines when not on a terminal, and at once when the test accuracy changes', () => {
    const out = new Sink(false);
    let now = 0;
    const p = new TrainingProgress({ out, logOut: new Sink(false), now: () => now, plainIntervalMs: 10_000 });
    for (let s = 1; s <= 30; s++) {
      now = s * 1000;
      p.update({ step: s, totalSteps: 30, ...(s === 15 ? { testAccuracy: 0.5 } : {}) }, 'chief:0');
    }
    p.finish();
    const lines = out.text.trim().split('\n');
    expect(lines.every((l) => l.startsWith('[progress] '))).to.equal(true);
    expect(lines.map((l) => /(\d+)\/30 steps/.exec(l)![1])).to.deep.equal(['1', '11', '15', '25', '30']);
    expect(out.text).to.not.include('\x1b');
  });

  it('formats durations', () => {
    expect([fmtDuration(5), fmtDuration(125), fmtDuration(7260)]).to.deep.equal(['5s', '2m05s', '2h01m']);
  });

  it('renders loss and test accuracy against time and images as a PNG', async () => {
    const history = Array.from({ length: 20 }, (_, i) => ({
      step: i * 10,
      seconds: i * 3,
      images: i * 1280,
      loss: 2.3 / (1 + i / 4),
      testAccuracy: i % 5 === 4 ? 0.1 + i / 25 : undefined,
    }));
    const spec = trainingPlotSpec(history, 'test run');
    expect(JSON.stringify(spec)).to.include('"test accuracy"');
    const png = await renderTrainingPlot(history, 'test run');
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).to.equal(true);
    expect(png.subarray(12, 16).toString('ascii')).to.equal('IHDR');
    const [width, height] = [png.readUInt32BE(16), png.readUInt32BE(20)];
    expect(width).to.be.above(600);
    expect(height).to.be.above(400);
    expect(png.subarray(png.length - 8, png.length - 4).toString('ascii')).to.equal('IEND');
  });
});
