/** Hand-written SVG charts of the bench results (no chart library): grouped bars and log-log lines. */

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");

/**
 * Horizontal bars of ratios against their references, one per row, with a dashed target mark per row.
 * rows: [{ label, value, target, note }] where value and target are in the same unit (x reference).
 */
export function ratioBars(title, rows, { width = 760 } = {}) {
  const rowH = 26;
  const left = 290;
  const right = 90;
  const top = 40;
  const height = top + rows.length * rowH + 40;
  const max = Math.max(...rows.map((r) => Math.max(r.value, r.target ?? 0))) * 1.1;
  // Log scale: the ratios span 0.2x to 300x.
  const lo = Math.min(0.1, ...rows.map((r) => r.value / 2));
  const x = (v) =>
    left +
    ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(max) - Math.log10(lo))) *
      (width - left - right);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  for (const tick of [0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000].filter((t) => t >= lo && t <= max)) {
    parts.push(
      `<line x1="${x(tick)}" y1="${top - 4}" x2="${x(tick)}" y2="${top + rows.length * rowH}" stroke="#ddd"/>`,
      `<text x="${x(tick)}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#555">${tick}x</text>`,
    );
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const color = r.target === undefined ? "#868e96" : r.value >= r.target ? "#2b8a3e" : "#c92a2a";
    parts.push(
      `<text x="${left - 8}" y="${y + 16}" text-anchor="end">${esc(r.label)}</text>`,
      `<rect x="${left}" y="${y + 4}" width="${Math.max(1, x(r.value) - left)}" height="${rowH - 8}" fill="${color}"/>`,
      `<text x="${x(r.value) + 4}" y="${y + 16}" fill="#222">${r.value >= 10 ? r.value.toFixed(0) : r.value.toFixed(2)}x${esc(r.note ?? "")}</text>`,
    );
    if (r.target !== undefined) {
      parts.push(
        `<line x1="${x(r.target)}" y1="${y + 1}" x2="${x(r.target)}" y2="${y + rowH - 1}" stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>`,
      );
    }
  });
  parts.push(
    `<text x="${left}" y="${height - 6}" fill="#555">bar: median ratio against the reference measured in the same run (log scale); dashed: target; green: met, red: missed, grey: no target</text>`,
    "</svg>",
  );
  return parts.join("\n");
}

/** Log-log line chart: series [{ name, color, points: [[x, y]] }]. */
export function lines(title, xLabel, yLabel, series, { width = 760, height = 360 } = {}) {
  const left = 70;
  const right = 150;
  const top = 40;
  const bottom = 50;
  const all = series.flatMap((s) => s.points);
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...all.map((p) => p[1])) / 1.5, Math.max(...all.map((p) => p[1])) * 1.5];
  const sx = (v) =>
    left +
    ((Math.log10(v) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0) || 1)) * (width - left - right);
  const sy = (v) =>
    top +
    (1 - (Math.log10(v) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * (height - top - bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${(width - right + left) / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${(width - right + left) / 2}" y="${height - 8}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="16" y="${(height - bottom + top) / 2}" transform="rotate(-90 16 ${(height - bottom + top) / 2})" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (const p of series[0].points) {
    parts.push(
      `<line x1="${sx(p[0])}" y1="${top}" x2="${sx(p[0])}" y2="${height - bottom}" stroke="#eee"/>`,
      `<text x="${sx(p[0])}" y="${height - bottom + 16}" text-anchor="middle" fill="#555">${p[0] >= 1024 ? `${p[0] / 1024}K` : p[0]}</text>`,
    );
  }
  for (let e = Math.floor(Math.log10(y0)); e <= Math.ceil(Math.log10(y1)); e++) {
    const v = 10 ** e;
    if (v < y0 || v > y1) continue;
    parts.push(
      `<line x1="${left}" y1="${sy(v)}" x2="${width - right}" y2="${sy(v)}" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${sy(v) + 4}" text-anchor="end" fill="#555">${v >= 1 ? v : v.toPrecision(1)}</text>`,
    );
  }
  series.forEach((s, i) => {
    const d = s.points
      .map((p, j) => `${j === 0 ? "M" : "L"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`)
      .join(" ");
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of s.points)
      parts.push(`<circle cx="${sx(p[0])}" cy="${sy(p[1])}" r="3" fill="${s.color}"/>`);
    parts.push(
      `<rect x="${width - right + 12}" y="${top + i * 20}" width="12" height="3" fill="${s.color}"/>`,
      `<text x="${width - right + 30}" y="${top + i * 20 + 5}">${esc(s.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}
