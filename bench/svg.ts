/**
 * Two charts for docs/benchmarks.md, written as plain SVG (no plotting dependency): the
 * growth curve, and Commons beside the ceiling and the workaround on a log scale.
 */
import type { BenchReport } from './run.js';

const COLORS: Record<string, string> = { sqlite: '#1f6feb', postgres: '#d1242f' };
const NAMES: Record<string, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"';

const esc = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function frame(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** p50 (solid) and p99 (dashed) of the first page against rooms per user, log x axis. */
export function growthChart(report: BenchReport): string {
  const width = 640;
  const height = 380;
  const left = 64;
  const right = 150;
  const top = 44;
  const bottom = 56;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const series = report.databases
    .filter((d) => d.scenarios?.growth)
    .map((d) => ({
      dialect: d.dialect,
      points: (d.scenarios?.growth?.points ?? [])
        .filter((p) => p.c1)
        .map((p) => ({
          x: p.roomsPerUser,
          p50: p.c1?.p50.median ?? NaN,
          p99: p.c1?.p99.median ?? NaN,
        })),
    }));
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const body: string[] = [];
  if (xs.length === 0) {
    body.push(
      `<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no growth figures in this run</text>`,
    );
    return frame(width, height, 'mutual_rooms first page vs rooms per user', body);
  }
  const minX = Math.log10(Math.min(...xs));
  const maxX = Math.max(minX + 1, Math.log10(Math.max(...xs)));
  const yMax = niceMax(
    Math.max(
      ...series.flatMap((s) => s.points.flatMap((p) => [p.p50, p.p99]).filter(Number.isFinite)),
    ),
  );
  const px = (x: number) => left + ((Math.log10(x) - minX) / (maxX - minX)) * plotW;
  const py = (y: number) => top + plotH - (y / yMax) * plotH;
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5;
    body.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${py(y).toFixed(1)}" y2="${py(y).toFixed(1)}" stroke="#e5e7eb"/>`,
      `<text x="${left - 8}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end">${+y.toFixed(3)}</text>`,
    );
  }
  for (let e = Math.ceil(minX); e <= Math.floor(maxX); e++) {
    const x = px(10 ** e);
    body.push(
      `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="#e5e7eb"/>`,
      `<text x="${x.toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${(10 ** e).toLocaleString('en-US')}</text>`,
    );
  }
  body.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#9ca3af"/>`,
    `<text x="${left + plotW / 2}" y="${height - 14}" text-anchor="middle">rooms per user (log scale)</text>`,
    `<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">latency, ms</text>`,
  );
  let legendY = top + 8;
  for (const s of series) {
    const color = COLORS[s.dialect] ?? '#333';
    for (const [key, dash] of [
      ['p50', ''],
      ['p99', ' stroke-dasharray="5 4"'],
    ] as const) {
      const pts = s.points.filter((p) => Number.isFinite(p[key]));
      if (pts.length === 0) continue;
      body.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts.map((p) => `${px(p.x).toFixed(1)},${py(p[key]).toFixed(1)}`).join(' ')}"/>`,
        ...pts.map(
          (p) =>
            `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p[key]).toFixed(1)}" r="3" fill="${color}"><title>${NAMES[s.dialect]} ${key} at ${p.x} rooms: ${p[key].toFixed(3)} ms</title></circle>`,
        ),
        `<line x1="${left + plotW + 12}" x2="${left + plotW + 36}" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="2"${dash}/>`,
        `<text x="${left + plotW + 42}" y="${legendY + 4}">${NAMES[s.dialect]} ${key}</text>`,
      );
      legendY += 20;
    }
  }
  return frame(width, height, 'mutual_rooms first page vs rooms per user (concurrency 1)', body);
}

/** Horizontal bars, log scale: the ceiling, Commons' first page and full walk, the workaround. */
export function comparisonChart(report: BenchReport): string {
  const bars: { group: string; label: string; ms: number; color: string }[] = [];
  for (const d of report.databases) {
    const s = d.scenarios;
    if (!s) continue;
    const first = s.mutual?.cases.find((c) => c.name.startsWith('heavy sharing') && c.page === 1);
    const group = NAMES[d.dialect] ?? d.dialect;
    const add = (label: string, ms: number | undefined, color: string) => {
      if (ms !== undefined && Number.isFinite(ms) && ms > 0) bars.push({ group, label, ms, color });
    };
    add('ceiling: one page (bare node:http)', first?.ceiling?.c1.p50.median, '#9ca3af');
    add('Commons: one page (p50)', first?.c1?.p50.median, COLORS[d.dialect] ?? '#333');
    add('Commons: all pages, in sequence', s.mutual?.walk?.ms.median, COLORS[d.dialect] ?? '#333');
    add('workaround: /joined_rooms + each /joined_members', s.workaround?.ms.median, '#f59e0b');
  }
  const width = 720;
  const left = 300;
  const right = 90;
  const top = 44;
  const barH = 20;
  const gap = 8;
  const groups = [...new Set(bars.map((b) => b.group))];
  const height = top + bars.length * (barH + gap) + groups.length * 22 + 50;
  const body: string[] = [];
  if (bars.length === 0) {
    body.push(
      `<text x="${width / 2}" y="80" text-anchor="middle">no comparison figures in this run</text>`,
    );
    return frame(width, 140, 'Mutual rooms of the heavy pair: time to answer', body);
  }
  const minE = Math.floor(Math.log10(Math.min(...bars.map((b) => b.ms))));
  const maxE = Math.ceil(Math.log10(Math.max(...bars.map((b) => b.ms))));
  const span = Math.max(1, maxE - minE);
  const plotW = width - left - right;
  const px = (ms: number) => left + ((Math.log10(ms) - minE) / span) * plotW;
  const axisBottom = height - 40;
  for (let e = minE; e <= maxE; e++) {
    const x = px(10 ** e);
    body.push(
      `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${top}" y2="${axisBottom}" stroke="#e5e7eb"/>`,
      `<text x="${x.toFixed(1)}" y="${axisBottom + 16}" text-anchor="middle">${10 ** e >= 1 ? (10 ** e).toLocaleString('en-US') : +(10 ** e).toPrecision(1)}</text>`,
    );
  }
  body.push(
    `<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">milliseconds (log scale)</text>`,
  );
  let y = top;
  for (const group of groups) {
    body.push(`<text x="8" y="${y + 14}" font-weight="600">${esc(group)}</text>`);
    y += 22;
    for (const bar of bars.filter((b) => b.group === group)) {
      const x0 = px(10 ** minE);
      body.push(
        `<text x="${left - 8}" y="${y + barH - 6}" text-anchor="end">${esc(bar.label)}</text>`,
        `<rect x="${x0.toFixed(1)}" y="${y}" width="${Math.max(1, px(bar.ms) - x0).toFixed(1)}" height="${barH}" fill="${bar.color}"><title>${esc(bar.label)}: ${bar.ms.toFixed(3)} ms</title></rect>`,
        `<text x="${(px(bar.ms) + 6).toFixed(1)}" y="${y + barH - 6}">${bar.ms < 10 ? bar.ms.toFixed(2) : Math.round(bar.ms).toLocaleString('en-US')} ms</text>`,
      );
      y += barH + gap;
    }
  }
  return frame(width, height, 'Mutual rooms of the heavy sharing pair: time to answer', body);
}
