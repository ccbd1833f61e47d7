// The jobs list, kept live by ONE stream for all of the owner's jobs: GET /v1/events.
// The page hands the stream the cursor it was rendered at, so nothing in between is missed;
// a card whose event_id is not above the row's is one the page already shows.
"use strict";

const badge = (kind, value) => {
  const span = document.createElement("span");
  if (!value) { span.className = "muted"; span.textContent = "—"; return span; }
  span.className = `badge ${kind}-${value}`;
  span.textContent = value.replaceAll("_", " ");
  return span;
};

function metricNodes(metric) {
  if (!metric || metric.value === null || metric.value === undefined) return [badge("metric", null)];
  const nodes = [`${metric.name.replaceAll("_", " ")} ${Number(metric.value).toFixed(4)}`];
  if (metric.epoch) {
    const epoch = document.createElement("span");
    epoch.className = "muted";
    epoch.textContent = `(epoch ${metric.epoch})`;
    nodes.push(" ", epoch);
  }
  return nodes;
}

function fill(row, card) {
  const cell = (field) => row.querySelector(`[data-field="${field}"]`);
  const status = badge("status", card.status);
  status.dataset.field = "status";
  row.querySelector('[data-field="status"]').replaceWith(status);
  cell("progress").textContent = `${card.progress.epoch} / ${card.progress.epochs}`;
  cell("verdict").replaceChildren(badge("verdict", card.verdict));
  cell("metric").replaceChildren(...metricNodes(card.metric));
  row.dataset.eventId = card.event_id;
}

function newRow(card) {
  const row = document.createElement("tr");
  row.dataset.jobId = card.job_id;
  const cells = ["pick", "name", "status", "progress", "verdict", "metric", "created"].map((field) => {
    const td = document.createElement("td");
    if (field === "pick") td.className = "pick";
    else td.dataset.field = field;
    row.append(td);
    return td;
  });
  const pick = document.createElement("input");
  Object.assign(pick, {type: "checkbox", name: "pick", value: card.job_id});
  pick.setAttribute("aria-label", "choose for compare");
  cells[0].append(pick);
  const link = document.createElement("a");
  link.href = `/jobs/${card.job_id}`;
  link.textContent = card.name || card.job_id.slice(0, 8);
  cells[1].append(link);
  const placeholder = document.createElement("span");
  placeholder.dataset.field = "status";
  cells[2].removeAttribute("data-field");
  cells[2].append(placeholder);
  cells[6].className = "muted";
  cells[6].textContent = (card.created_at || "").slice(0, 19).replace("T", " ");
  fill(row, card);
  return row;
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("jobs");
  const body = table.querySelector("tbody");
  const live = document.getElementById("live");
  const compare = document.getElementById("compare-picked");
  const wanted = {status: table.dataset.filterStatus, verdict: table.dataset.filterVerdict};
  const matches = (card) => (!wanted.status || card.status === wanted.status)
    && (!wanted.verdict || card.verdict === wanted.verdict);

  const updateCompare = () => {
    compare.disabled = table.querySelectorAll('input[name="pick"]:checked').length < 1;
  };
  table.addEventListener("change", updateCompare);
  updateCompare();

  const cursor = encodeURIComponent(table.dataset.streamCursor);
  const source = new EventSource(`/v1/events?last_event_id=${cursor}`);
  source.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.classList.remove("on"); });
  source.addEventListener("job", (event) => {
    const card = JSON.parse(event.data);
    const row = body.querySelector(`tr[data-job-id="${card.job_id}"]`);
    if (row) {
      if (card.event_id > Number(row.dataset.eventId || -1)) fill(row, card);
    } else if (table.dataset.firstPage === "true" && matches(card)) {
      body.prepend(newRow(card));
      document.getElementById("empty").hidden = true;
    }
  });
  source.addEventListener("deleted", (event) => {
    const gone = JSON.parse(event.data);
    body.querySelector(`tr[data-job-id="${gone.job_id}"]`)?.remove();
  });
  window.addEventListener("pagehide", () => source.close());
});
