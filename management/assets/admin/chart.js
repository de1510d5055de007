// Line charts as inline SVG, drawn from analytics buckets: no chart library.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * p) return m * p;
  return 10 * p;
}

function label(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)}k`;
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(2)));
}

/**
 * A line chart. `series` is `[{ name, points: [[timeMs, value], …] }]`; `unit`
 * labels the y axis; `range` (`[fromMs, toMs]`) is the x axis, else the points' span. Each series gets a colour class (`series-0`…) and a legend
 * entry; the numbers are also in a table for screen readers and keyboards.
 */
export function lineChart(title, series, unit, range = null) {
  const width = 420;
  const height = 200;
  const pad = { left: 40, right: 10, top: 10, bottom: 24 };
  const times = series.flatMap((x) => x.points.map((p) => p[0]));
  const values = series.flatMap((x) => x.points.map((p) => p[1]));
  const t0 = range ? range[0] : Math.min(...times);
  const t1 = range ? range[1] : Math.max(...times);
  const yMax = niceMax(Math.max(0, ...values));
  const x = (t) => pad.left + (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right));
  const y = (v) => height - pad.bottom - (v / yMax) * (height - pad.top - pad.bottom);

  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart", "aria-label": `${title} (${unit})` });
  svg.append(s("title", {}, `${title} (${unit})`));
  for (let i = 0; i <= 5; i += 1) {
    const v = (yMax * i) / 5;
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: pad.left - 5, y: y(v) + 4, class: "axis", "text-anchor": "end" }, label(v)));
  }
  if (times.length > 0 || range) {
    const fmt = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    svg.append(s("text", { x: pad.left, y: height - 8, class: "axis" }, fmt(t0)));
    svg.append(s("text", { x: width - pad.right, y: height - 8, class: "axis", "text-anchor": "end" }, fmt(t1)));
  }
  series.forEach((line, i) => {
    const d = line.points.map((p, j) => `${j === 0 ? "M" : "L"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svg.append(s("path", { d, class: `line series-${i % 6}` }));
    if (line.points.length === 1) {
      const [p] = line.points;
      svg.append(s("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, class: `dot series-${i % 6}` }));
    }
  });

  const legend = h(
    "ul",
    { class: "legend" },
    series.map((line, i) => h("li", {}, h("span", { class: `swatch series-${i % 6}`, "aria-hidden": "true" }), line.name)),
  );
  const rows = [];
  for (const line of series) for (const [t, v] of line.points) rows.push([line.name, new Date(t).toLocaleTimeString(), label(v)]);
  const data = h(
    "details",
    { class: "chart-data" },
    h("summary", {}, "Show the numbers"),
    h(
      "table",
      {},
      h("caption", {}, `${title} (${unit})`),
      h("thead", {}, h("tr", {}, ["Series", "Time", unit].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
    ),
  );
  return h("figure", { class: "chart-card" }, h("figcaption", {}, title), svg, legend, data);
}
