// Compare: each chosen job's curve of one metric, overlaid (GET /v1/jobs/{id}/curves per job).
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const figure = document.getElementById("compare-chart");
  if (!figure) return;
  const metric = figure.dataset.metric;
  const chart = new LineChart(figure, {title: metric.replaceAll("_", " "), yLabel: metric.replaceAll("_", " ")});
  chart.width = 900;
  chart.height = 380;
  const names = Object.fromEntries([...document.querySelectorAll(".choice input")].map(
    (input) => [input.value, (input.nextSibling?.textContent || "").trim() || input.value.slice(0, 8)]));
  const results = await Promise.all(figure.dataset.jobs.split(",").map(async (id) => {
    const {status, body} = await trainrx.api("GET", `/v1/jobs/${id}/curves`);
    return [id, status === 200 ? body : null];
  }));
  for (const [id, body] of results) {
    if (!body) continue;
    const label = `${names[id] || id.slice(0, 8)} (${id.slice(0, 6)})`;
    chart.set(label, (body[metric] || []).map((y, i) => [body.epoch[i], y]));
  }
  chart.render();
  figure.dataset.series = String(chart.series.size);
});
