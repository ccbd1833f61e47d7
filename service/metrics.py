"""``GET /metrics``: Prometheus text format, for a scraper holding ``TRAINRX_METRICS_TOKEN``.

- Unset token: 404 (metrics are off; nothing about the service leaks).
- Set: ``Authorization: Bearer <token>`` or 401 (no credential) / 403 (a wrong one).
  API tokens do not open it: a scraper needs no owner, and no owner sees it.

What it reports, and where each figure comes from:

- per API process, summed over gunicorn's processes by prometheus-client's
  multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by service/gunicorn_conf.py):
  requests and their latency by endpoint (the Flask rule, ``/v1/jobs/<job_id>``,
  never the raw path), method and status;
- from the database: jobs by status and queue;
- from Redis, written by every worker on every host (core/cluster_metrics.py): queue
  depth, live and draining workers, epochs (a counter and the last minute's rate),
  job duration and queue-wait histograms.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

from flask import Flask, Response, current_app, g, request
from flask_smorest import abort
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from core import cluster_metrics
from core.db import jobs
from core.job_status import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from core.queueing import QUEUES
from service.extensions import Parts

log = logging.getLogger("trainrx.api")
TOKEN_ENV = "TRAINRX_METRICS_TOKEN"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
UNMATCHED = "<unmatched>"  # a path no rule serves (a 404): one label value, not one per path

# Not registered anywhere at import: in multiprocess mode their values live in files that
# MultiProcessCollector reads; otherwise each scrape registers them in its own registry.
REQUESTS = Counter("trainrx_http_requests", "API requests by endpoint (Flask rule), method and status.",
                   ["endpoint", "method", "status"], registry=None)
LATENCY = Histogram("trainrx_http_request_duration_seconds",
                    "API request latency (until the response starts) by endpoint, method and status.",
                    ["endpoint", "method", "status"], registry=None,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _RequestMetrics:
    """This process's request metrics, for a registry of one scrape (single-process mode)."""

    def collect(self):
        yield from REQUESTS.collect()
        yield from LATENCY.collect()


class ClusterCollector:
    """Figures every API process reads alike: the database's jobs, Redis's queues and workers."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def collect(self):
        up = GaugeMetricFamily("trainrx_part_up", "Whether a part answered this scrape (1) or not (0).",
                               labels=["part"])
        try:
            yield self._jobs()
            up.add_metric(["database"], 1)
        except Exception:
            log.warning("metrics: the database did not answer", exc_info=True)
            up.add_metric(["database"], 0)
        try:
            yield from self._redis()
            up.add_metric(["redis"], 1)
        except Exception:
            log.warning("metrics: Redis did not answer", exc_info=True)
            up.add_metric(["redis"], 0)
        yield up

    def _jobs(self) -> GaugeMetricFamily:
        counts = {(status, queue): 0 for status in STATUSES for queue in QUEUES}
        query = select(jobs.c.status, jobs.c.queue, func.count()).group_by(jobs.c.status, jobs.c.queue)
        with self.parts.store.engine.connect() as conn:
            for status, queue, count in conn.execute(query):
                counts[(status, queue)] = count
        family = GaugeMetricFamily("trainrx_jobs", "Jobs in the database by status and queue.",
                                   labels=["status", "queue"])
        for (status, queue), count in sorted(counts.items()):
            family.add_metric([status, queue], count)
        return family

    def _redis(self):
        client = self.parts.redis
        depth = GaugeMetricFamily("trainrx_queue_depth", "Job messages waiting in each queue.", labels=["queue"])
        epochs = CounterMetricFamily("trainrx_epochs", "Epochs finished by every worker.", labels=["queue"])
        rate = GaugeMetricFamily("trainrx_epochs_per_second",
                                 "Epochs finished per second over the last minute, every worker together.",
                                 labels=["queue"])
        for queue in QUEUES:
            depth.add_metric([queue], cluster_metrics.queue_depth(client, queue))
            epochs.add_metric([queue], cluster_metrics.epochs_total(client, queue))
            rate.add_metric([queue], cluster_metrics.epochs_per_second(client, queue))
        yield from (depth, epochs, rate)
        live = cluster_metrics.live_workers(client)
        drained = set(cluster_metrics.draining_workers(client)) & set(live)
        yield GaugeMetricFamily("trainrx_workers_live", "Workers whose presence key in Redis is fresh (every host).",
                                value=len(live))
        yield GaugeMetricFamily("trainrx_workers_draining", "Live workers drained: taking no new job "
                                "(workers/drain.py).", value=len(drained))
        for name, what in ((cluster_metrics.JOB_DURATION, "A run's time from its start to its end, by queue."),
                           (cluster_metrics.QUEUE_WAIT, "A job's wait from submission to its first start, by queue.")):
            family = HistogramMetricFamily(f"trainrx_{name}", what, labels=["queue"])
            for queue in QUEUES:
                hist = cluster_metrics.histogram(client, name, queue)
                family.add_metric([queue], hist.buckets, hist.sum)
            yield family


def init_app(app: Flask) -> None:
    """Time every request (register first, so the other hooks' time counts) and serve /metrics."""
    app.config.setdefault("METRICS_TOKEN", os.environ.get(TOKEN_ENV, ""))

    @app.before_request
    def _started() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("request_started")
        endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        labels = (endpoint, request.method, str(response.status_code))
        REQUESTS.labels(*labels).inc()
        if started is not None:
            LATENCY.labels(*labels).observe(time.perf_counter() - started)
        return response

    app.add_url_rule("/metrics", "metrics", _metrics)


def _metrics() -> Response:
    token = current_app.config.get("METRICS_TOKEN") or ""
    if not token:
        abort(404, message=f"Metrics are off: set {TOKEN_ENV} to serve them to a scraper holding it.")
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer "):
        abort(401, message=f"GET /metrics needs Authorization: Bearer <{TOKEN_ENV}>.",
              headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if not hmac.compare_digest(given[len("Bearer "):].strip().encode(), token.encode()):
        abort(403, message=f"That is not the {TOKEN_ENV}.")
    registry = CollectorRegistry()
    if _multiprocess():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_RequestMetrics())
    registry.register(ClusterCollector(current_app.extensions["trainrx"]))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
