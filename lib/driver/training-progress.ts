/**
 * One live progress line for a whole training cluster, fed by the nodes' TFNode.reportMetrics()
 * (the handle's 'metrics' events):
 *
 *   [██████░░░░░░░░] 1200/3900 steps · epoch 1.5/5 · 812 img/s · loss 1.234 · test acc 61.2% · ETA 3m20s
 *
 * On a terminal the line redraws in place (log lines print above it); otherwise (CI, a file) it
 * prints a plain line every `plainIntervalMs` and whenever the test accuracy changes.
 */
import type { MetricsEvent, TFClusterHandle } from './cluster';
import type { TrainingMetrics } from '../protocol/control';

export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface TrainingProgressOptions {
  /** Where the bar goes (default process.stderr). */
  out?: ProgressSink;
  /** Where log() lines go (default process.stdout). */
  logOut?: ProgressSink;
  /** Between plain lines when `out` is not a terminal (default 10 s). */
  plainIntervalMs?: number;
  /** Between redraws on a terminal (default 200 ms). */
  redrawMs?: number;
  now?: () => number;
}

export class TrainingProgress {
  private readonly out: ProgressSink;
  private readonly logOut: ProgressSink;
  private readonly tty: boolean;
  private readonly now: () => number;
  private latest?: TrainingMetrics;
  private source?: string;
  private test?: { accuracy: number; images?: number; step: number };
  private first?: { step: number; at: number };
  private drawn = '';
  private lastPlain = -Infinity;
  private lastDraw = 0;
  private plainTest?: number;

  constructor(private readonly opts: TrainingProgressOptions = {}) {
    this.out = opts.out ?? process.stderr;
    this.logOut = opts.logOut ?? process.stdout;
    this.tty = Boolean(this.out.isTTY);
    this.now = opts.now ?? Date.now;
  }

  /** Follows a cluster's 'metrics' events. */
  attach(handle: Pick<TFClusterHandle, 'on'>): this {
    handle.on('metrics', (m: MetricsEvent) => this.update(m, m.label));
    return this;
  }

  /** Takes one report. The chief's (or the most advanced node's) step drives the bar; any node's test accuracy counts. */
  update(m: TrainingMetrics, from = 'chief:0'): void {
    if (m.testAccuracy !== undefined) this.test = { accuracy: m.testAccuracy, images: m.testImages, step: m.step };
    const isDriver = !this.latest || from === this.source || from.startsWith('chief') || m.step > this.latest.step;
    if (!isDriver || from.startsWith('evaluator')) {
      this.render();
      return;
    }
    this.source = from;
    this.latest = { ...this.latest, ...m, phase: m.phase };
    const t = this.now();
    if (!this.first || m.step < this.first.step) this.first = { step: m.step, at: t };
    this.render();
  }

  /** The line as it would be drawn now (without terminal control characters). */
  line(width = 100): string {
    const m = this.latest;
    if (!m) return this.test ? `test accuracy ${(this.test.accuracy * 100).toFixed(1)}%` : 'waiting for the first training step';
    const parts: string[] = [];
    const total = m.totalSteps;
    parts.push(total ? `${m.step}/${total} steps` : `step ${m.step}`);
    if (m.epoch !== undefined) parts.push(`epoch ${fmtEpoch(m.epoch)}${m.epochs ? `/${m.epochs}` : ''}`);
    if (m.imagesPerSec !== undefined) parts.push(`${Math.round(m.imagesPerSec)} img/s`);
    if (m.loss !== undefined) parts.push(`loss ${m.loss.toFixed(3)}`);
    if (this.test) parts.push(`test acc ${(this.test.accuracy * 100).toFixed(1)}%`);
    if (m.phase) parts.push(m.phase);
    const eta = this.eta();
    if (eta !== undefined) parts.push(`ETA ${fmtDuration(eta)}`);
    const text = parts.join(' · ');
    if (!total) return text;
    const barWidth = Math.max(10, Math.min(30, width - text.length - 4));
    const filled = Math.round((Math.min(m.step, total) / total) * barWidth);
    return `[${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}] ${text}`;
  }

  /** Seconds left, from the step rate seen by this driver. */
  private eta(): number | undefined {
    const m = this.latest;
    if (!m?.totalSteps || !this.first) return undefined;
    const steps = m.step - this.first.step;
    const secs = (this.now() - this.first.at) / 1000;
    if (steps <= 0 || secs <= 0) return undefined;
    return Math.max(0, (m.totalSteps - m.step) / (steps / secs));
  }

  private render(force = false): void {
    const t = this.now();
    if (this.tty) {
      if (!force && t - this.lastDraw < (this.opts.redrawMs ?? 200)) return;
      this.lastDraw = t;
      const width = (this.out.columns ?? 100) - 1;
      const text = this.line(width).slice(0, width);
      if (text === this.drawn) return;
      this.drawn = text;
      this.out.write(`\r\x1b[2K${text}`);
      return;
    }
    const testChanged = this.test && this.test.accuracy !== this.plainTest;
    if (!force && !testChanged && t - this.lastPlain < (this.opts.plainIntervalMs ?? 10_000)) return;
    this.lastPlain = t;
    this.plainTest = this.test?.accuracy;
    this.out.write(`[progress] ${this.line(100)}\n`);
  }

  /** Prints a line above the bar (trainer output; `to` defaults to the log sink). */
  log(line: string, to: ProgressSink = this.logOut): void {
    if (this.tty && this.drawn) {
      this.out.write('\r\x1b[2K');
      to.write(`${line}\n`);
      this.out.write(this.drawn);
    } else to.write(`${line}\n`);
  }

  /** Draws the final state and ends the bar's line. */
  finish(): void {
    if (!this.latest && !this.test) return;
    this.render(true);
    if (this.tty && this.drawn) this.out.write('\n');
    this.drawn = '';
  }
}

function fmtEpoch(e: number): string {
  return Number.isInteger(e) ? String(e) : e.toFixed(1);
}

export function fmtDuration(secs: number): string {
  const s = Math.round(secs);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
