"""What a worker adds to the cluster's figures in Redis (core/cluster_metrics.py):
epochs as they finish, a job's queue wait when it first starts, a run's duration
when it ends. ``GET /metrics`` on any API host reads them back. A Redis (or a
database) that does not answer costs a figure, never a job."""

from __future__ import annotations

import logging
from functools import lru_cache

import redis

from core import cluster_metrics
from core.job_status import FINISHED, as_utc
from core.jobstore import JobStore
from core.redis_urls import redis_py_url

log = logging.getLogger("trainrx.worker")


@lru_cache(maxsize=4)
def _client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_py_url(redis_url), socket_timeout=2, socket_connect_timeout=2)


def _safely(what: str, write, *args) -> None:
    try:
        write(*args)
    except redis.RedisError as exc:
        log.warning("metrics: %s not recorded (%s)", what, exc)


def epoch_finished(redis_url: str, queue: str) -> None:
    _safely("an epoch", cluster_metrics.record_epochs, _client(redis_url), queue)


def job_started(redis_url: str, job: dict) -> None:
    """The wait from submission to the first start; a job that comes back to the queue
    (its worker lost, or shut down) is not counted again."""
    if int(job.get("run") or 0) != 1 or job.get("started_at") is None:
        return
    wait = (as_utc(job["started_at"]) - as_utc(job["created_at"])).total_seconds()
    _safely("a queue wait", cluster_metrics.observe, _client(redis_url), cluster_metrics.QUEUE_WAIT, job["queue"],
            max(wait, 0.0))


def run_settled(redis_url: str, store: JobStore, job: dict) -> None:
    """The duration of a run that ended the job (not one superseded, nor one handed back)."""
    try:
        row = store.get(job["id"], owner=None)
    except Exception as exc:  # the database blipped after the job's own writes: only the figure is lost
        log.warning("metrics: the duration of job %s not recorded (%s)", job["id"], type(exc).__name__)
        return
    if row is None or row["status"] not in FINISHED or int(row["run"]) != int(job["run"]):
        return
    if row.get("started_at") is None or row.get("finished_at") is None:
        return
    duration = (as_utc(row["finished_at"]) - as_utc(row["started_at"])).total_seconds()
    _safely("a job duration", cluster_metrics.observe, _client(redis_url), cluster_metrics.JOB_DURATION,
            row["queue"], max(duration, 0.0))
