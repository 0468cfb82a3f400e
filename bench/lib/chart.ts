/**
 * The ratio table as an SVG bar chart, written beside the Markdown report (`RESULTS.svg` next to
 * `RESULTS.md`) and shown in it as an image. Hand-written SVG: one row per comparison, a bar to the
 * median requests/s ratio, a whisker over the rounds' min–max, a tick at the target.
 */

/** One row of the chart. */
export interface ChartRow {
  label: string;
  median: number;
  min: number;
  max: number;
  target?: number | undefined;
}

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Bar colour: met (green), missed (red), no target (grey). */
function colour(row: ChartRow): string {
  if (row.target === undefined) return '#8c96a0';
  return row.median >= row.target ? '#2e8b57' : '#c0392b';
}

/** Render the rows; the x axis runs from 0 to the largest value (ratios of 1 and targets marked). */
export function ratioChartSvg(rows: readonly ChartRow[], title: string): string {
  const labelWidth = 470;
  const plotWidth = 420;
  const rowHeight = 22;
  const top = 48;
  const height = top + rows.length * rowHeight + 36;
  const width = labelWidth + plotWidth + 90;
  const largest = Math.max(1, ...rows.flatMap((r) => [r.max, r.median, r.target ?? 0]));
  // A linear axis up to 4x; beyond, the axis is capped there and longer bars are cut with a marker.
  const axisMax = Math.min(4, Math.ceil(largest * 4) / 4);
  const x = (value: number) => labelWidth + (Math.min(value, axisMax) / axisMax) * plotWidth;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="10" y="37" fill="#555">bar: median requests/s ratio · whisker: min–max over rounds · black tick: target · green met, red missed, grey no target</text>`,
  ];
  const steps = axisMax <= 1.5 ? 0.25 : axisMax <= 3 ? 0.5 : 1;
  for (let v = 0; v <= axisMax + 1e-9; v += steps) {
    const gx = x(v).toFixed(1);
    const strong = Math.abs(v - 1) < 1e-9;
    out.push(
      `<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${top + rows.length * rowHeight}" stroke="${strong ? '#333' : '#ddd'}" stroke-width="${strong ? 1.2 : 1}"/>`,
      `<text x="${gx}" y="${top + rows.length * rowHeight + 16}" text-anchor="middle" fill="#333">${v.toFixed(2)}×</text>`,
    );
  }
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    const mid = y + rowHeight / 2;
    const label = row.label.length > 72 ? `${row.label.slice(0, 71)}…` : row.label;
    out.push(
      `<text x="${labelWidth - 8}" y="${mid + 4}" text-anchor="end">${escapeXml(label)}</text>`,
      `<rect x="${labelWidth}" y="${y + 4}" width="${(x(row.median) - labelWidth).toFixed(1)}" height="${rowHeight - 8}" fill="${colour(row)}"/>`,
      `<line x1="${x(row.min).toFixed(1)}" y1="${mid}" x2="${x(row.max).toFixed(1)}" y2="${mid}" stroke="#222" stroke-width="1.5"/>`,
    );
    if (row.target !== undefined) {
      const tx = x(row.target).toFixed(1);
      out.push(
        `<line x1="${tx}" y1="${y + 1}" x2="${tx}" y2="${y + rowHeight - 1}" stroke="#000" stroke-width="2.5"/>`,
      );
    }
    const cut = row.median > axisMax ? ' ▶' : '';
    out.push(
      `<text x="${(x(Math.max(row.median, row.max)) + 6).toFixed(1)}" y="${mid + 4}" fill="#333">${row.median.toFixed(2)}×${cut}</text>`,
    );
  });
  out.push('</svg>', '');
  return out.join('\n');
}

/**
 * The rows of a report's "Targets and ratios" table (`| label | ≥ 0.85× (issue 2) | 0.87 (0.85–0.89) | …`),
 * for reports whose raw data is gone: `npx tsx bench/chart.ts bench/RESULTS.md`.
 */
export function rowsFromMarkdown(markdown: string): ChartRow[] {
  const section = markdown.split('## Targets and ratios')[1]?.split('\n## ')[0] ?? '';
  const rows: ChartRow[] = [];
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 5) continue;
    const spread = /^([\d.]+)(?: \(([\d.]+)–([\d.]+)\))?$/.exec(cells[3]!);
    if (!spread) continue;
    const target = /^≥ ([\d.]+)×/.exec(cells[2]!);
    const median = Number(spread[1]);
    rows.push({
      label: cells[1]!,
      median,
      min: spread[2] ? Number(spread[2]) : median,
      max: spread[3] ? Number(spread[3]) : median,
      target: target ? Number(target[1]) : undefined,
    });
  }
  return rows;
}
