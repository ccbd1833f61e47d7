// A small SVG line chart for learning curves: a few series, numeric x, linear y.
// No library and no network: the dashboard must work offline.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1f6fd1", "#e4572e", "#29a36a", "#9b5de5", "#f0a202", "#00a6a6", "#d1495b", "#6c757d"];

function svg(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Round tick values over [low, high].
function ticks(low, high, count = 5) {
  if (!(high > low)) return [low];
  const step0 = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= step0);
  const out = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

class LineChart {
  constructor(figure, {title, xLabel = "epoch", yLabel = ""} = {}) {
    this.figure = figure;
    this.title = title;
    this.xLabel = xLabel;
    this.yLabel = yLabel;
    this.series = new Map();  // name -> [[x, y], ...]
    this.width = 560;
    this.height = 300;
  }

  set(name, points) { this.series.set(name, points.filter(([, y]) => y !== null && Number.isFinite(y))); }

  add(name, x, y) {
    if (y === null || y === undefined || !Number.isFinite(y)) return;
    if (!this.series.has(name)) this.series.set(name, []);
    const points = this.series.get(name);
    const at = points.findIndex(([px]) => px === x);
    if (at >= 0) points[at] = [x, y]; else points.push([x, y]);
    points.sort((a, b) => a[0] - b[0]);
  }

  points() { return [...this.series.values()].reduce((n, p) => n + p.length, 0); }

  render() {
    const m = {left: 58, right: 16, top: 30, bottom: 44};
    const w = this.width, h = this.height;
    const all = [...this.series.values()].flat();
    const root = svg("svg", {viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": this.title || "chart"});
    root.append(svg("text", {x: m.left, y: 18, class: "chart-title"}, this.title || ""));
    this.figure.dataset.points = String(all.length);
    if (all.length === 0) {
      root.append(svg("text", {x: w / 2, y: h / 2, class: "chart-empty", "text-anchor": "middle"}, "no points yet"));
      this.figure.replaceChildren(root);
      return;
    }
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    const pad = (y1 - y0) * 0.05;
    y0 -= pad; y1 += pad;
    const X = (x) => m.left + (x - x0) / (x1 - x0) * (w - m.left - m.right);
    const Y = (y) => h - m.bottom - (y - y0) / (y1 - y0) * (h - m.top - m.bottom);

    const axes = svg("g", {class: "axes"});
    for (const t of ticks(y0, y1)) {
      axes.append(svg("line", {x1: m.left, x2: w - m.right, y1: Y(t), y2: Y(t), class: "grid"}));
      axes.append(svg("text", {x: m.left - 6, y: Y(t) + 4, "text-anchor": "end"}, String(t)));
    }
    for (const t of ticks(x0, x1).filter((t) => Number.isInteger(t))) {
      axes.append(svg("text", {x: X(t), y: h - m.bottom + 16, "text-anchor": "middle"}, String(t)));
    }
    axes.append(svg("line", {x1: m.left, x2: w - m.right, y1: h - m.bottom, y2: h - m.bottom, class: "axis"}));
    axes.append(svg("line", {x1: m.left, x2: m.left, y1: m.top, y2: h - m.bottom, class: "axis"}));
    axes.append(svg("text", {x: (m.left + w - m.right) / 2, y: h - 8, "text-anchor": "middle", class: "label"},
                    this.xLabel));
    axes.append(svg("text", {x: 14, y: (m.top + h - m.bottom) / 2, "text-anchor": "middle", class: "label",
                             transform: `rotate(-90 14 ${(m.top + h - m.bottom) / 2})`}, this.yLabel));
    root.append(axes);

    let index = 0, legendX = m.left + 160;
    for (const [name, points] of this.series) {
      const color = COLORS[index++ % COLORS.length];
      const d = points.map(([x, y], i) => `${i ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
      root.append(svg("path", {d, fill: "none", stroke: color, "stroke-width": 2, class: "series"}));
      for (const [x, y] of points.length <= 60 ? points : []) {
        root.append(svg("circle", {cx: X(x), cy: Y(y), r: 2.5, fill: color}));
      }
      root.append(svg("rect", {x: legendX, y: 10, width: 10, height: 10, fill: color}));
      root.append(svg("text", {x: legendX + 14, y: 19, class: "legend"}, name));
      legendX += 22 + name.length * 7;
    }
    this.figure.replaceChildren(root);
  }
}

window.LineChart = LineChart;
