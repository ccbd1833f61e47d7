"""Figures that live on many hosts, kept in Redis so that any API process can report
them: epochs trained, job durations and queue waits (workers write them,
workers/metrics.py), live and draining workers, queue depths. ``GET /metrics``
reads them (service/metrics.py); no figure comes from one process's memory.

Keys (all under ``trainrx:metrics:``):

- ``epochs:<queue>``: epochs finished, ever (a counter);
- ``epochs:<queue>:<t>``: epochs finished in the 10 s window starting at ``t * 10``
  (expires after two minutes), for epochs per second over the last minute;
- ``hist:<name>:<queue>``: a histogram as a hash: one count per bucket (``le`` as
  written in :data:`BUCKETS`, not cumulative), ``count`` and ``sum``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis
from kombu.transport.redis import Channel

from core.queueing import WORKER_KEY_PREFIX

PREFIX = "trainrx:metrics:"
DRAINING_PREFIX = "trainrx:draining:"  # one key per drained worker (workers/drain.py)
WINDOW_S, RATE_OVER_S = 10, 60
JOB_DURATION, QUEUE_WAIT = "job_duration_seconds", "job_queue_wait_seconds"
# Tiny test jobs take a second, real ones up to the one-hour default cap (and more when raised).
BUCKETS = {
    JOB_DURATION: (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, math.inf),
    QUEUE_WAIT: (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600, math.inf),
}


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


def record_epochs(client: redis.Redis, queue: str, epochs: int = 1, now: float | None = None) -> None:
    window = int((time.time() if now is None else now) // WINDOW_S)
    key = f"{PREFIX}epochs:{queue}:{window}"
    pipe = client.pipeline(transaction=False)
    pipe.incrby(f"{PREFIX}epochs:{queue}", epochs)
    pipe.incrby(key, epochs)
    pipe.expire(key, 2 * RATE_OVER_S)
    pipe.execute()


def observe(client: redis.Redis, name: str, queue: str, value: float) -> None:
    bound = next(b for b in BUCKETS[name] if value <= b)
    key = f"{PREFIX}hist:{name}:{queue}"
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(key, _le(bound), 1)
    pipe.hincrby(key, "count", 1)
    pipe.hincrbyfloat(key, "sum", value)
    pipe.execute()


@dataclass(frozen=True)
class Histogram:
    buckets: list[tuple[str, int]]  # (le, cumulative count), ending with +Inf
    count: int
    sum: float


def histogram(client: redis.Redis, name: str, queue: str) -> Histogram:
    raw = {k.decode(): v for k, v in client.hgetall(f"{PREFIX}hist:{name}:{queue}").items()}
    running, buckets = 0, []
    for bound in BUCKETS[name]:
        running += int(raw.get(_le(bound), 0))
        buckets.append((_le(bound), running))
    return Histogram(buckets=buckets, count=int(raw.get("count", 0)), sum=float(raw.get("sum", 0.0)))


def epochs_total(client: redis.Redis, queue: str) -> int:
    return int(client.get(f"{PREFIX}epochs:{queue}") or 0)


def epochs_per_second(client: redis.Redis, queue: str, now: float | None = None) -> float:
    """Epochs finished over the last minute's complete 10 s windows, per second."""
    current = int((time.time() if now is None else now) // WINDOW_S)
    windows = range(current - RATE_OVER_S // WINDOW_S, current)
    counts = client.mget([f"{PREFIX}epochs:{queue}:{w}" for w in windows])
    return sum(int(c or 0) for c in counts) / RATE_OVER_S


def queue_depth(client: redis.Redis, queue: str) -> int:
    """Messages waiting in ``queue``: kombu keeps one Redis list per priority step."""
    keys = [queue] + [f"{queue}{Channel.sep}{step}" for step in Channel.priority_steps if step]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    return sum(pipe.execute())


def live_workers(client: redis.Redis) -> list[str]:
    """Workers whose presence key (refreshed every 10 s, workers/celery_app.py) is fresh."""
    return sorted(k.decode()[len(WORKER_KEY_PREFIX):]
                  for k in client.scan_iter(match=f"{WORKER_KEY_PREFIX}*", count=100))


def draining_workers(client: redis.Redis) -> list[str]:
    return sorted(k.decode()[len(DRAINING_PREFIX):] for k in client.scan_iter(match=f"{DRAINING_PREFIX}*", count=100))

