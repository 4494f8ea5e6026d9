// A small line chart as inline SVG: no library, no script, readable in any browser
// and in the HTML report as saved. Values over seconds, one line per series.

export interface Series { name: string; points: [number, number][] }

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];
const W = 720, H = 260, L = 64, R = 150, T = 28, B = 36;

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A "nice" upper bound and step for an axis: 1, 2 or 5 times a power of ten. */
function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw)!;
  return { top: Math.ceil(max / step) * step, step };
}

const fmt = (v: number) => (v >= 10_000 ? `${Math.round(v / 1000)}k` : v >= 1000 ? `${(v / 1000).toFixed(1)}k` : `${Math.round(v * 10) / 10}`);

/** Decades from 0.1 up to the first power of ten above max, for latencies that span 1 ms to 10 s. */
function logTicks(max: number): number[] {
  const ticks = [0.1];
  while (ticks[ticks.length - 1]! < max && ticks.length < 8) ticks.push(ticks[ticks.length - 1]! * 10);
  return ticks.length < 2 ? [0.1, 1] : ticks;
}

export function lineChart(title: string, unit: string, series: Series[], opts: { log?: boolean } = {}): string {
  const visible = series.filter((s) => s.points.length > 0);
  const xs = visible.flatMap((s) => s.points.map((p) => p[0]));
  const ys = visible.flatMap((s) => s.points.map((p) => p[1]));
  const xMax = Math.max(1, ...xs);
  const { top, step } = niceScale(Math.max(0, ...ys));
  const ticks = opts.log ? logTicks(Math.max(0, ...ys)) : [];
  const lo = Math.log10(0.1), hi = Math.log10(ticks[ticks.length - 1] ?? 1);
  const px = (x: number) => L + (x / xMax) * (W - L - R);
  const py = opts.log
    ? (y: number) => T + (1 - (Math.log10(Math.max(y, 0.1)) - lo) / (hi - lo)) * (H - T - B)
    : (y: number) => T + (1 - y / top) * (H - T - B);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<text x="${L}" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`,
    `<text x="${W - R + 8}" y="16" fill="#555">${esc(unit)}</text>`,
  ];
  for (let y = opts.log ? top + step : 0; y <= top + step / 2; y += step) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#e4e4e4"/>`,
      `<text x="${L - 6}" y="${py(y) + 4}" text-anchor="end" fill="#555">${fmt(y)}</text>`);
  }
  for (const y of ticks) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#e4e4e4"/>`,
      `<text x="${L - 6}" y="${py(y) + 4}" text-anchor="end" fill="#555">${fmt(y)}</text>`);
  }
  const xStep = Math.max(1, Math.ceil(xMax / 10));
  for (let x = 0; x <= xMax; x += xStep) {
    parts.push(`<text x="${px(x)}" y="${H - B + 16}" text-anchor="middle" fill="#555">${x}s</text>`);
  }
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#999"/>`, `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#999"/>`);
  visible.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"/>`,
      `<rect x="${W - R + 8}" y="${T + i * 16}" width="10" height="10" fill="${color}"/>`,
      `<text x="${W - R + 22}" y="${T + i * 16 + 9}">${esc(s.name)}</text>`);
  });
  if (visible.length === 0) parts.push(`<text x="${(L + W - R) / 2}" y="${H / 2}" text-anchor="middle" fill="#999">no samples</text>`);
  parts.push('</svg>');
  return parts.join('');
}
