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

3. **re-publishes lost exports** (a finished job's ``trainrx.export_model``, core/model_exports.py):
   an export still ``pending`` that no task took and that has no message (published before
   the cutoff, like queued jobs); and one whose task went quiet for longer than the export
   limit plus the heartbeat grace (its worker was lost mid-export): its claim is released and
   the export published again, once; a second loss ends it ``failed``.

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
from core.model_exports import PendingExport
from core.queueing import EXPORT_TASK, QUEUES, TRAIN_TASK, export_queue, publish_export, publish_job
from core.redis_urls import redis_py_url
from core.settings import Settings
from workers import parents

log = logging.getLogger("trainrx.recovery")
LOCK_KEY = "trainrx:recovery:lock"
UNACKED_KEY = "unacked"  # kombu's Redis transport keeps delivered, unacknowledged messages here
MAX_EXPORT_ATTEMPTS = 2  # exports whose worker was lost this often end failed


def job_ids_with_messages(client: redis.Redis, task: str = TRAIN_TASK, queues: tuple[str, ...] = QUEUES) -> set[str]:
    """Jobs that have a ``task`` message waiting in one of ``queues`` or delivered but not acknowledged."""
    raw: list[bytes] = []
    for queue in queues:
        for key in client.scan_iter(match=f"{queue}*", count=100):  # kombu's priority lists: cpu, cpu\x06\x163...
            if client.type(key) == b"list":
                raw += client.lrange(key, 0, -1)
    for value in client.hvals(UNACKED_KEY):
        try:
            raw.append(json.dumps(json.loads(value)[0]).encode())
        except (ValueError, IndexError, TypeError):
            continue
    return {job_id for job_id in (_job_id(message, task) for message in raw) if job_id}


def _job_id(message: bytes, task: str = TRAIN_TASK) -> str | None:
    try:
        envelope = json.loads(message)
        if envelope.get("headers", {}).get("task") != task:
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
        done = {"requeued": [], "failed": [], "cancelled": [], "republished": [], "exports_republished": [],
                "exports_failed": []}
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
        self._recover_exports(done)
        if any(done.values()):
            log.info("recovery: %s", {k: len(v) for k, v in done.items()})
        parents.advance_all(self.settings, self.store, self.celery)  # sweeps and remedies whose children ended
        return done

    def _publish(self, job_id: str, queue: str) -> None:
        publish_job(self.celery, job_id, queue, returning=True)

    def _recover_exports(self, done: dict) -> None:
        pending = self.store.pending_exports()
        if not pending:
            return
        now = utcnow()
        unsent_before = now - timedelta(seconds=2 * self.settings.recovery_interval_s)
        lost_before = now - timedelta(seconds=self.settings.export_timeout_s + self.settings.heartbeat_grace_s)
        queues = tuple(dict.fromkeys((*QUEUES, *([self.settings.export_queue] if self.settings.export_queue else []))))
        present: set[str] | None = None
        for export in pending:
            if export.claimed_at is not None:
                if export.claimed_at < lost_before:
                    self._lost_export(export, done)
                continue
            if export.finished_at is None or export.finished_at >= unsent_before:
                continue
            if present is None:
                present = job_ids_with_messages(self.client, EXPORT_TASK, queues)
            if export.job_id not in present:
                publish_export(self.celery, export.job_id, export_queue(self.settings, export.queue))
                done["exports_republished"].append(export.job_id)

    def _lost_export(self, export: PendingExport, done: dict) -> None:
        """The task that took this export went quiet past the export limit: its worker was lost."""
        if export.attempts >= MAX_EXPORT_ATTEMPTS:
            reason = (f"the worker exporting the model was lost {export.attempts} times (killed, out of memory, or "
                      "its host went away); the weights are kept")
            if self.store.fail_export(export.job_id, export.attempts, reason):
                self.store.log(export.job_id, f"model export failed: {reason}", run=None)
                done["exports_failed"].append(export.job_id)
            return
        if self.store.release_export(export.job_id, export.attempts):
            self.store.log(export.job_id, "the worker exporting the model stopped answering; the export starts "
                                          "again", run=None)
            publish_export(self.celery, export.job_id, export_queue(self.settings, export.queue))
            done["exports_republished"].append(export.job_id)


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
