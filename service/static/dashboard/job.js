// A job's page: its curves, live while it runs (GET /v1/jobs/{id}/events, the job's own stream),
// and its actions: cancel, resubmit with a patch, delete.
"use strict";

// What the stream told this page, in order (tests read it; so may a curious person).
window.trainrxLive = {events: []};

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("job");
  const jobId = root.dataset.jobId;
  const errorBox = document.getElementById("action-error");
  const fail = (text) => { errorBox.textContent = text; errorBox.hidden = false; };

  const charts = [...document.querySelectorAll(".chart[data-keys]")].map((figure) => {
    const chart = new LineChart(figure, {title: figure.dataset.title, yLabel: figure.dataset.title.toLowerCase()});
    chart.keys = figure.dataset.keys.split(",");
    for (const key of chart.keys) chart.set(key.replace("_", " "), []);
    chart.render();
    return chart;
  });
  const plotRow = (row) => {
    for (const chart of charts) {
      for (const key of chart.keys) {
        if (key in row) chart.add(key.replace("_", " "), row.epoch, row[key]);
      }
      chart.render();
    }
  };

  if (root.dataset.finished !== "true") follow();
  const frame = document.getElementById("report-frame");
  if (frame) fitReport(frame);

  function showStatus(status) {
    const badge = document.createElement("span");
    badge.className = `badge status-${status}`;
    badge.dataset.field = "status";
    badge.textContent = status;
    document.getElementById("job-status").replaceChildren(badge);
    root.dataset.status = status;
  }

  // The job's report (GET /v1/jobs/{id}/report: plots, findings, their patches with resubmit buttons),
  // framed at its full height; a resubmit made inside it opens the new job here.
  function fitReport(frame) {
    const fit = () => {
      const doc = frame.contentDocument;
      if (!doc || doc.URL === "about:blank" || root.dataset.report === "loaded") return;
      doc.documentElement.style.overflowY = "hidden";  // the frame grows with it instead
      const height = () => { frame.style.height = `${doc.body.scrollHeight + 48}px`; };
      height();
      new ResizeObserver(height).observe(doc.body);  // the report's own script adds buttons after loading
      root.dataset.report = "loaded";
    };
    frame.addEventListener("load", fit);
    if (frame.contentDocument && frame.contentDocument.readyState === "complete") fit();  // loaded before this ran
  }

  // The report posts {type: "trainrx:resubmitted", job} to the page around it (docs/plots.md).
  window.addEventListener("message", (event) => {
    const frame = document.getElementById("report-frame");
    if (event.origin !== window.location.origin || !frame || event.source !== frame.contentWindow) return;
    if (event.data && event.data.type === "trainrx:resubmitted" && event.data.job) {
      window.location.assign(`/jobs/${event.data.job.id}`);
    }
  });

  function showReport() {
    const section = document.getElementById("report");
    const frame = document.createElement("iframe");
    frame.id = "report-frame";
    frame.title = `Report of job ${jobId.slice(0, 8)}`;
    fitReport(frame);
    frame.src = `/v1/jobs/${jobId}/report`;
    section.replaceChildren(frame);
    section.hidden = false;
  }

  function showVerdict(verdict) {
    const badge = document.createElement("span");
    badge.className = `badge verdict-${verdict}`;
    badge.textContent = verdict.replaceAll("_", " ");
    document.getElementById("job-verdict").replaceChildren(badge);
  }

  function follow() {
    const live = document.getElementById("live");
    const total = document.getElementById("job-progress").textContent.split("/")[1];
    const source = new EventSource(`/v1/jobs/${jobId}/events`);
    source.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
    source.addEventListener("error", () => {
      if (root.dataset.ended !== "true") { live.textContent = "reconnecting…"; live.classList.remove("on"); }
    });
    source.addEventListener("status", (event) => {
      const data = JSON.parse(event.data);
      window.trainrxLive.events.push({type: "status", id: event.lastEventId, status: data.status});
      showStatus(data.status);
    });
    source.addEventListener("epoch", (event) => {
      const row = JSON.parse(event.data);
      window.trainrxLive.events.push({type: "epoch", id: event.lastEventId, epoch: row.epoch});
      document.getElementById("job-progress").textContent = `${row.epoch} /${total}`;
      // a classification job reports accuracy, a regression job R² (named as the card names it)
      const score = row.val_accuracy ?? row.val_r2;
      if (score !== undefined && score !== null) {
        const label = row.val_accuracy != null ? "val accuracy" : "val r2";
        trainrx.text(document.getElementById("job-metric"), `${label} ${Number(score).toFixed(4)} (epoch ${row.epoch})`);
      }
      plotRow(row);
    });
    source.addEventListener("end", (event) => {
      const job = JSON.parse(event.data);
      source.close();
      window.trainrxLive.events.push({type: "end", id: event.lastEventId, status: job.status});
      showStatus(job.status);
      root.dataset.ended = "true";
      live.textContent = "finished";
      live.classList.remove("on");
      document.getElementById("cancel")?.remove();
      document.getElementById("curves-note").textContent = `The job ${job.status}. Its report:`;
      trainrx.api("GET", `/v1/jobs/${jobId}/diagnosis`).then(({status, body}) => {
        if (status === 200 && body.verdict) showVerdict(body.verdict);
      });
      showReport();
    });
    window.addEventListener("pagehide", () => source.close());
  }

  document.getElementById("cancel")?.addEventListener("click", async () => {
    const result = await trainrx.api("POST", `/v1/jobs/${jobId}/cancel`);
    if (result.status >= 300) fail(trainrx.message(result));
    else if (result.body && result.body.status) showStatus(result.body.status);
  });

  const remove = document.getElementById("delete");
  remove?.addEventListener("click", async () => {
    if (remove.dataset.armed !== "true") {  // a second click confirms
      remove.dataset.armed = "true";
      remove.textContent = "Click again to delete for good";
      return;
    }
    const result = await trainrx.api("DELETE", `/v1/jobs/${jobId}`);
    if (result.status === 204) window.location.assign("/");
    else fail(trainrx.message(result));
  });

  const patchErrors = document.getElementById("patch-errors");
  async function resubmit(patch) {
    patchErrors.hidden = true;
    errorBox.hidden = true;
    const result = await trainrx.api("POST", `/v1/jobs/${jobId}/resubmit`, {patch});
    if (result.status === 202 || result.status === 200) {
      window.location.assign(`/jobs/${result.body.id}`);
    } else if (result.status === 422 && result.body && result.body.errors) {
      trainrx.showFieldErrors(patchErrors, result.body.errors);
      fail(trainrx.message(result));
    } else {
      fail(trainrx.message(result));
    }
  }
  document.getElementById("resubmit").addEventListener("click", () => {
    let patch;
    try {
      patch = JSON.parse(document.getElementById("patch").value);
    } catch (e) {
      fail(`The patch is not valid JSON: ${e.message}`);
      return;
    }
    resubmit(patch);
  });
});
