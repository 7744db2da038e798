/**
 * The plot of a training run (training.png): loss and test accuracy against wall-clock time and
 * against images seen. Declared as a vega-lite spec, rendered by vega to SVG and by resvg to PNG,
 * so no canvas or browser is needed.
 */

export interface HistoryPoint {
  step: number;
  /** Seconds since the start of training (continuing across resumes). */
  seconds: number;
  /** Training images seen so far, over all workers. */
  images: number;
  loss?: number;
  testAccuracy?: number;
}

type Spec = Record<string, unknown>;

/** The vega-lite spec of the plot (exported for tests and for users who want to restyle it). */
export function trainingPlotSpec(history: HistoryPoint[], title = 'training'): Spec {
  const rows = history.flatMap((h) => [
    ...(h.loss !== undefined && Number.isFinite(h.loss)
      ? [{ seconds: h.seconds, images: h.images, metric: 'training loss', value: h.loss }]
      : []),
    ...(h.testAccuracy !== undefined && Number.isFinite(h.testAccuracy)
      ? [{ seconds: h.seconds, images: h.images, metric: 'test accuracy', value: h.testAccuracy }]
      : []),
  ]);
  const chart = (metric: string, x: 'seconds' | 'images', xTitle: string): Spec => ({
    width: 320,
    height: 200,
    transform: [{ filter: { field: 'metric', equal: metric } }],
    mark: { type: 'line', point: metric === 'test accuracy' },
    encoding: {
      x: { field: x, type: 'quantitative', title: xTitle },
      y: { field: 'value', type: 'quantitative', title: metric, scale: { zero: metric === 'test accuracy' } },
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    background: 'white',
    data: { values: rows },
    vconcat: [
      { hconcat: [chart('training loss', 'seconds', 'seconds'), chart('training loss', 'images', 'images seen')] },
      { hconcat: [chart('test accuracy', 'seconds', 'seconds'), chart('test accuracy', 'images', 'images seen')] },
    ],
  };
}

/** Renders a vega-lite spec to SVG text. */
export async function renderSvg(spec: Spec): Promise<string> {
  // Loaded on demand: only the chief that writes the plot pays for vega.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const vl = require('vega-lite') as { compile(spec: unknown): { spec: unknown } };
  const vega = require('vega') as {
    parse(spec: unknown): unknown;
    View: new (runtime: unknown, opts: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
  };
  /* eslint-enable @typescript-eslint/no-require-imports */
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVG text → PNG bytes (resvg; system fonts for the labels). */
export function svgToPng(svg: string, scale = 2): Buffer {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Resvg } = require('@resvg/resvg-js') as { Resvg: new (svg: string, opts: unknown) => { render(): { asPng(): Buffer } } };
  return Buffer.from(new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: scale } }).render().asPng());
}

/** The training plot as PNG bytes. */
export async function renderTrainingPlot(history: HistoryPoint[], title?: string): Promise<Buffer> {
  return svgToPng(await renderSvg(trainingPlotSpec(history, title)));
}
