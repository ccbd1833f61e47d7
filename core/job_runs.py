"""The worker's side of the job store: one *run* of a job, fenced.

Every start of a job begins a new run (``jobs.run``, bumped by the start). Every
write a worker makes — heartbeat, epochs, logs, data info, finish, hand-back —
names the run it belongs to, and is refused (:class:`Superseded`) once the job
has moved on: the reaper gave it to another worker, or it was cancelled and
finished. So a worker that was cut off but is still running can never
overwrite the run that replaced it.

``attempts`` counts lost workers only (the reaper's work in
:meth:`JobRunStore.reap`), not graceful hand-backs. Every status change also
bumps ``status_seq`` and raises ``status_high`` to the progress reached so far:
the live events' ids derive from these two (core/events.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from core.db import job_epochs, job_logs, jobs
from core.job_status import CANCELLED, FAILED, ID_PATTERN, QUEUED, RUNNING, as_utc, utcnow
from core.jsonsafe import json_safe

log = logging.getLogger("trainrx.worker")
WORKER_LOST = "worker_lost"
MAX_LOST_WORKERS = 1  # a job whose worker is lost once more than this ends failed (worker_lost)


class Superseded(Exception):
    """This run is no longer the job's current run: stop, write nothing more."""


@dataclass(frozen=True)
class Beat:
    """What a heartbeat learned."""

    current: bool  # False: the run was superseded (or the job finished): stop quietly
    cancel_requested: bool


@dataclass(frozen=True)
class Reaped:
    job_id: str
    outcome: str  # "requeued" | "failed" | "cancelled"
    queue: str


def status_change(**values: Any) -> dict:
    """The values of a status change: its sequence number and the progress it happened at."""
    return {**values, "status_seq": jobs.c.status_seq + 1, "status_high": _high()}


def _high():
    return case((jobs.c.progress_epoch > jobs.c.status_high, jobs.c.progress_epoch), else_=jobs.c.status_high)


class JobRunStore:
    engine: Engine

    def _now(self) -> datetime:
        return utcnow()

    def _current(self, job_id: str, run: int) -> list:
        return [jobs.c.id == job_id, jobs.c.run == run, jobs.c.status == RUNNING]

    def _fenced_update(self, conn: Connection, job_id: str, run: int, **values: Any) -> None:
        if conn.execute(update(jobs).where(*self._current(job_id, run)).values(**values)).rowcount != 1:
            raise Superseded(f"job {job_id}: run {run} is no longer current")

    # --- starting -----------------------------------------------------------

    def start(self, job_id: str, worker: str) -> dict | None:
        """queued -> running, as a new run. None when the job is not queued (already running
        elsewhere, finished, or gone): a redelivered or duplicate message then does nothing."""
        if not isinstance(job_id, str) or not ID_PATTERN.match(job_id):
            return None
        now = self._now()
        with self.engine.begin() as conn:
            started = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == QUEUED).values(
                **status_change(status=RUNNING, run=jobs.c.run + 1, started_at=now, heartbeat_at=now,
                                 worker=worker, run_status_seq=jobs.c.status_seq + 1,
                                 run_status_high=_high()))).rowcount == 1
        return self.get(job_id, owner=None) if started else None  # type: ignore[attr-defined]

    def rewind(self, job_id: str, run: int, epoch: int) -> None:
        """The run starts after ``epoch`` (0: from scratch; k: resumed from a checkpoint at k):
        forget the curves after it and what was derived from them."""
        with self.engine.begin() as conn:
            values: dict[str, Any] = {"progress_epoch": epoch}
            if epoch == 0:
                values.update(summary=None, steps=None, initial_probes=None, diagnosis=None)
            self._fenced_update(conn, job_id, run, **values)
            conn.execute(delete(job_epochs).where(job_epochs.c.job_id == job_id, job_epochs.c.epoch > epoch))

    # --- while it runs ------------------------------------------------------

    def heartbeat(self, job_id: str, run: int) -> Beat:
        with self.engine.begin() as conn:
            alive = conn.execute(update(jobs).where(*self._current(job_id, run))
                                 .values(heartbeat_at=self._now())).rowcount == 1
            cancel = conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar()
        return Beat(current=alive, cancel_requested=bool(cancel))

    def record_epoch(self, job_id: str, run: int, metrics: dict, summary: dict | None, *,
                     steps: dict | None = None, initial_probes: dict | None = None,
                     diagnosis: dict | None = None) -> None:
        """One finished epoch: its curves row and the training steps sampled in it (``steps``:
        this epoch's only), the progress, the summary and, when given, the diagnosis so far.
        Its cost does not grow with the number of epochs before it."""
        epoch = int(metrics["epoch"])
        values: dict[str, Any] = {"progress_epoch": epoch, "summary": json_safe(summary),
                                  "heartbeat_at": self._now()}
        if initial_probes is not None:
            values["initial_probes"] = json_safe(initial_probes)
        if diagnosis is not None:
            values["diagnosis"] = json_safe(diagnosis)
        with self.engine.begin() as conn:
            self._fenced_update(conn, job_id, run, **values)
            conn.execute(delete(job_epochs).where(job_epochs.c.job_id == job_id, job_epochs.c.epoch == epoch))
            conn.execute(insert(job_epochs).values(job_id=job_id, epoch=epoch, metrics=json_safe(metrics),
                                                   steps=json_safe(steps)))

    def set_data_info(self, job_id: str, run: int, data_info: dict) -> None:
        with self.engine.begin() as conn:
            self._fenced_update(conn, job_id, run, data_info=json_safe(data_info))

    def log(self, job_id: str, line: str, *, run: int | None) -> None:
        """A line of the job's own log; with ``run``, only while that run is current."""
        at, text = self._now(), json_safe(line)
        with self.engine.begin() as conn:
            if run is None:
                conn.execute(insert(job_logs).values(job_id=job_id, at=at, line=text))
                return
            # The fence is an UPDATE (its row count is reliable on every database, unlike an
            # INSERT ... SELECT's); a log line is a sign of life, so it stamps the heartbeat.
            self._fenced_update(conn, job_id, run, heartbeat_at=at)
            conn.execute(insert(job_logs).values(job_id=job_id, at=at, line=text))

    # --- ending a run -------------------------------------------------------

    def finish(self, job_id: str, run: int, status: str, *, summary: dict | None = None,
               error: dict | None = None, diagnosis: dict | None = None, artifacts: dict | None = None,
               setup_s: float | None = None, train_s: float | None = None, model_status: str | None = None) -> None:
        """running -> succeeded, failed or cancelled; raises Superseded when the run is not current.
        ``model_status`` ``pending`` when the job left weights: its exports run after it (core/model_exports.py)."""
        job = self.get(job_id, owner=None)  # type: ignore[attr-defined]
        if job is None or job["run"] != run or job["status"] != RUNNING:
            raise Superseded(f"job {job_id}: run {run} is no longer current")
        now = self._now()
        timings = {
            "queued_s": (job["started_at"] - job["created_at"]).total_seconds() if job["started_at"] else None,
            "setup_s": setup_s, "train_s": train_s,
            "total_s": (now - job["started_at"]).total_seconds() if job["started_at"] else None,
        }
        values: dict[str, Any] = {"finished_at": now, "timings": json_safe(timings), "error": json_safe(error),
                                  "runtime_used_s": self._used(job, now)}
        if summary is not None:
            values["summary"] = json_safe(summary)
        if diagnosis is not None:
            values["diagnosis"] = json_safe(diagnosis)
        if artifacts is not None:
            values["artifacts"] = json_safe(artifacts)
        if model_status is not None:
            values["model_status"] = model_status
        with self.engine.begin() as conn:
            self._fenced_update(conn, job_id, run, **status_change(status=status, **values))

    def hand_back(self, job_id: str, run: int) -> None:
        """running -> queued without counting a lost worker (the worker is shutting down);
        the curves so far stay until the next run rewinds them."""
        job = self.get(job_id, owner=None)  # type: ignore[attr-defined]
        if job is None or job["run"] != run or job["status"] != RUNNING:
            raise Superseded(f"job {job_id}: run {run} is no longer current")
        with self.engine.begin() as conn:
            self._fenced_update(conn, job_id, run, **status_change(
                status=QUEUED, heartbeat_at=None, worker=None, runtime_used_s=self._used(job, self._now())))

    @staticmethod
    def _used(job: dict, until: datetime) -> float:
        """Wall time of every run so far, this one (started_at .. until) included."""
        started = job["started_at"]
        this_run = max((until - started).total_seconds(), 0.0) if started else 0.0
        return float(job["runtime_used_s"] or 0.0) + this_run

    # --- the reaper -----------------------------------------------------------

    def reap(self, grace_s: float, now: datetime | None = None) -> list[Reaped]:
        """Running jobs whose heartbeat stopped more than ``grace_s`` ago lost their worker:
        a cancelled one ends ``cancelled``; one that lost a worker before ends ``failed``
        (``worker_lost``), keeping its partial curves; any other goes back to the queue for
        one more attempt. Each is a conditional update on the stale run, so a heartbeat that
        lands meanwhile wins."""
        now = now or self._now()
        cutoff = now - timedelta(seconds=grace_s)
        with self.engine.connect() as conn:
            stale = [dict(r) for r in conn.execute(select(jobs).where(
                jobs.c.status == RUNNING, jobs.c.heartbeat_at < cutoff)).mappings()]
        reaped = []
        for job in stale:
            job["started_at"] = as_utc(job["started_at"])
            last_alive = as_utc(job["heartbeat_at"])
            used = self._used(job, last_alive)
            lost = int(job["attempts"] or 0) + 1
            if job["cancel_requested"]:
                outcome, values = CANCELLED, dict(status=CANCELLED, finished_at=now, runtime_used_s=used)
            elif lost > MAX_LOST_WORKERS:
                outcome, values = FAILED, dict(
                    status=FAILED, finished_at=now, attempts=lost, runtime_used_s=used,
                    error={"type": WORKER_LOST, "message": f"The worker running this job was lost {lost} times "
                                                           "(killed, out of memory, or its host went away); "
                                                           "its partial curves are kept."})
            else:
                outcome, values = "requeued", dict(status=QUEUED, attempts=lost, heartbeat_at=None, worker=None,
                                                   runtime_used_s=used)
            with self.engine.begin() as conn:
                done = conn.execute(update(jobs).where(
                    jobs.c.id == job["id"], jobs.c.run == job["run"], jobs.c.status == RUNNING,
                    jobs.c.heartbeat_at < cutoff).values(**status_change(**values))).rowcount == 1
            if done:
                reaped.append(Reaped(job["id"], outcome, job["queue"]))
        return reaped

    def queued_before(self, cutoff: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        """(id, queue) of jobs queued since before ``cutoff``: the sweep makes sure each has a message."""
        condition = and_(jobs.c.status == QUEUED, func.coalesce(jobs.c.started_at, jobs.c.created_at) < cutoff)
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(select(jobs.c.id, jobs.c.queue).where(condition)
                                                       .order_by(jobs.c.created_at).limit(limit))]


FINISH_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def finish_durably(store: "JobRunStore", job_id: str, run: int, status: str, **results) -> None:
    """The final write, retried with backoff through database errors (about 15 s in all).
    If the database stays away, the job is left to the reaper: its heartbeat has stopped, so
    within TRAINRX_HEARTBEAT_GRACE_S it is re-queued (or ended worker_lost)."""
    for delay in (*FINISH_RETRY_DELAYS_S, None):
        try:
            store.finish(job_id, run, status, **results)
            return
        except Superseded:
            raise
        except DBAPIError:
            if delay is None:
                log.exception("job %s: could not record its end (%s); the reaper will take it over", job_id,
                              status)
                return
            log.warning("job %s: recording its end failed; retrying in %.1f s", job_id, delay, exc_info=True)
            time.sleep(delay)
