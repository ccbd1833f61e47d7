"""The recovery sweep: no job is lost, none is stuck. Runs inside every worker.

At worker start and then every ``TRAINRX_RECOVERY_INTERVAL_S`` (10 s), the worker
that takes a short Redis lock:

1. **reaps** running jobs whose heartbeat is older than ``TRAINRX_HEARTBEAT_GRACE_S``
   (60 s): their worker was lost (SIGKILL, out of memory, a host gone). The job goes
   back to the queue for one more attempt, resuming from its last checkpoint; a
   second loss ends it ``failed`` (``worker_lost``) with its partial curves; a job
   whose cancel was requested ends ``cancelled`` (core/job_runs.py ``reap``);
2. **re-publishes** every job the database says is queued but that has no message
   in its Redis queue (nor in the broker's unacknowledged set): a crash between the
   job's insert and its publish, a Redis that lost its data or was flushed. The
   database is the truth about queued work; a duplicate message is harmless, since
   only one start of a queued job can win (``JobRunStore.start``).

Together with acks-late delivery this gives at-least-once delivery of every job,
and the run fencing makes the extra deliveries no-ops.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import timedelta

import redis
from celery import Celery

from core.db import make_engine
from core.events import EventPublisher
from core.jobstore import JobStore, utcnow
from core.queueing import QUEUES, TRAIN_TASK, publish_job
from core.redis_urls import redis_py_url
from core.settings import Settings
from workers import parents

log = logging.getLogger("trainrx.recovery")
LOCK_KEY = "trainrx:recovery:lock"
UNACKED_KEY = "unacked"  # kombu's Redis transport keeps delivered, unacknowledged messages here


def job_ids_with_messages(client: redis.Redis) -> set[str]:
    """Jobs that have a train message waiting in a queue or delivered but not acknowledged."""
    raw: list[bytes] = []
    for queue in QUEUES:
        for key in client.scan_iter(match=f"{queue}*", count=100):  # kombu's priority lists: cpu, cpu\x06\x163...
            if client.type(key) == b"list":
                raw += client.lrange(key, 0, -1)
    for value in client.hvals(UNACKED_KEY):
        try:
            raw.append(json.dumps(json.loads(value)[0]).encode())
        except (ValueError, IndexError, TypeError):
            continue
    return {job_id for job_id in map(_job_id, raw) if job_id}


def _job_id(message: bytes) -> str | None:
    try:
        envelope = json.loads(message)
        if envelope.get("headers", {}).get("task") != TRAIN_TASK:
            return None
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class RecoverySweep:
    def __init__(self, settings: Settings, store: JobStore, client: redis.Redis, celery: Celery) -> None:
        self.settings, self.store, self.client, self.celery = settings, store, client, celery
        self.events = EventPublisher(client)

    def once(self) -> dict:
        """One sweep (the caller holds the lock). Returns what it did, for logs and tests."""
        done = {"requeued": [], "failed": [], "cancelled": [], "republished": []}
        for reaped in self.store.reap(self.settings.heartbeat_grace_s):
            done[reaped.outcome].append(reaped.job_id)
            what = {"requeued": "it goes back to the queue and resumes from its last checkpoint",
                    "failed": "the job ends failed (worker_lost) with its partial curves",
                    "cancelled": "its cancel was requested, so it ends cancelled"}[reaped.outcome]
            self.store.log(reaped.job_id, f"the worker running this job stopped answering; {what}", run=None)
            self.events.status(self.store.get(reaped.job_id, owner=None))
            if reaped.outcome == "requeued":
                self._publish(reaped.job_id, reaped.queue)
        cutoff = utcnow() - timedelta(seconds=2 * self.settings.recovery_interval_s)
        queued = self.store.queued_before(cutoff)
        if queued:
            present = job_ids_with_messages(self.client)
            for job_id, queue in queued:
                if job_id not in present and job_id not in done["requeued"]:
                    self._publish(job_id, queue)
                    done["republished"].append(job_id)
        if any(done.values()):
            log.info("recovery: %s", {k: len(v) for k, v in done.items()})
        parents.advance_all(self.settings, self.store, self.celery)  # sweeps and remedies whose children ended
        return done

    def _publish(self, job_id: str, queue: str) -> None:
        publish_job(self.celery, job_id, queue, returning=True)


def start_recovery_sweeper(settings: Settings, celery: Celery, stop: threading.Event,
                           hostname: str) -> threading.Thread:
    thread = threading.Thread(target=_sweep_periodically, args=(settings, celery, stop, hostname),
                              name="trainrx-recovery", daemon=True)
    thread.start()
    return thread


def _sweep_periodically(settings: Settings, celery: Celery, stop: threading.Event, hostname: str) -> None:
    client = redis.Redis.from_url(redis_py_url(settings.redis_url), socket_timeout=5, socket_connect_timeout=5)
    engine = make_engine(settings.database_url)
    sweep = RecoverySweep(settings, JobStore(engine), client, celery)
    lock_ttl_ms = max(int(settings.recovery_interval_s * 1000) - 100, 100)
    while not stop.is_set():
        try:
            if client.set(LOCK_KEY, hostname, nx=True, px=lock_ttl_ms):
                sweep.once()
        except Exception:  # Redis or the database may blip; the next round tries again
            log.exception("recovery sweep failed")
        stop.wait(settings.recovery_interval_s)
    engine.dispose()
