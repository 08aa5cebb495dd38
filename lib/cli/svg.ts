/**
 * The loss curve of a run as a standalone SVG (hand-written, no dependencies): training loss
 * per step as a line, validation loss as a line with dots, linear axes with round ticks.
 * @module
 */

/** One point of a curve. */
export interface CurvePoint {
  /** Optimizer step. */
  step: number;
  /** Loss at that step. */
  loss: number;
}

/** Options of {@linkcode lossCurveSvg}. */
export interface LossCurveOptions {
  /** Width in px. Default 720. */
  width?: number;
  /** Height in px. Default 420. */
  height?: number;
  /** Title above the plot. Default "Loss". */
  title?: string;
}

const MARGIN = { left: 64, right: 20, top: 36, bottom: 48 };
const TRAIN_COLOR = "#1f77b4";
const VAL_COLOR = "#d62728";

/** Escapes text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** About `count` round tick values (1, 2 or 5 × 10^k apart) within [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const closest = (s: number) => Math.abs((hi - lo) / s - count);
  const step = [1, 2, 5, 10].map((m) => m * mag).reduce((a, b) => closest(b) < closest(a) ? b : a);
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

function label(v: number): string {
  return Number(v.toPrecision(6)).toString();
}

/** The SVG document of the training and validation curves (non-finite losses are skipped). */
export function lossCurveSvg(
  curves: { train: readonly CurvePoint[]; val?: readonly CurvePoint[] },
  options: LossCurveOptions = {},
): string {
  const width = options.width ?? 720, height = options.height ?? 420;
  const title = options.title ?? "Loss";
  const finite = (p: CurvePoint) => Number.isFinite(p.loss) && Number.isFinite(p.step);
  const train = curves.train.filter(finite), val = (curves.val ?? []).filter(finite);
  const all = [...train, ...val];
  const steps = all.map((p) => p.step), losses = all.map((p) => p.loss);
  let [x0, x1] = all.length ? [Math.min(...steps), Math.max(...steps)] : [0, 1];
  let [y0, y1] = all.length ? [Math.min(...losses), Math.max(...losses)] : [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const plotW = width - MARGIN.left - MARGIN.right, plotH = height - MARGIN.top - MARGIN.bottom;
  const px = (x: number) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
  const py = (y: number) => MARGIN.top + (1 - (y - y0) / (y1 - y0)) * plotH;
  const fmt = (v: number) => v.toFixed(2);
  const points = (ps: readonly CurvePoint[]) =>
    ps.map((p) => `${fmt(px(p.step))},${fmt(py(p.loss))}`).join(" ");

  const out: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
  const bottom = MARGIN.top + plotH, right = MARGIN.left + plotW;
  for (const t of niceTicks(x0, x1, 8)) {
    const x = fmt(px(t));
    out.push(
      `<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${bottom}" stroke="#eee"/>`,
      `<text x="${x}" y="${bottom + 16}" text-anchor="middle">${label(t)}</text>`,
    );
  }
  for (const t of niceTicks(y0, y1, 6)) {
    const y = fmt(py(t));
    out.push(
      `<line x1="${MARGIN.left}" y1="${y}" x2="${right}" y2="${y}" stroke="#eee"/>`,
      `<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${
        label(t)
      }</text>`,
    );
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" ` +
      `fill="none" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${height - 10}" text-anchor="middle">step</text>`,
    `<text x="16" y="${MARGIN.top + plotH / 2}" text-anchor="middle" ` +
      `transform="rotate(-90 16 ${MARGIN.top + plotH / 2})">loss</text>`,
  );
  if (train.length > 0) {
    out.push(
      `<polyline id="train" fill="none" stroke="${TRAIN_COLOR}" stroke-width="1.5" ` +
        `points="${points(train)}"/>`,
    );
  }
  if (val.length > 0) {
    out.push(
      `<polyline id="val" fill="none" stroke="${VAL_COLOR}" stroke-width="2" ` +
        `points="${points(val)}"/>`,
      `<g fill="${VAL_COLOR}">`,
      ...val.map((p) => `<circle cx="${fmt(px(p.step))}" cy="${fmt(py(p.loss))}" r="3"/>`),
      `</g>`,
    );
  }
  const legend: [string, string][] = [["train", TRAIN_COLOR]];
  if (val.length > 0) legend.push(["validation", VAL_COLOR]);
  legend.forEach(([name, color], i) => {
    const y = MARGIN.top + 14 + i * 16, x = right - 110;
    out.push(
      `<line x1="${x}" y1="${y}" x2="${x + 20}" y2="${y}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${x + 26}" y="${y}" dominant-baseline="middle">${name}</text>`,
    );
  });
  out.push(`</svg>`, "");
  return out.join("\n");
}
