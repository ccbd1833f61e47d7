"""Reading and writing jobs. Every status change is a conditional update, so
that a cancel racing a worker's start (or two workers racing each other) can
never both win."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.db import job_epochs, job_logs, jobs
from core.jsonsafe import json_safe

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
# A running job whose heartbeat (every 2 s) stopped this long ago has lost its worker.
STALE_AFTER_S = 60.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were written in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def request_fingerprint(request: dict) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


class InvalidCursor(ValueError):
    pass


@dataclass
class Page:
    items: list[dict]
    next_cursor: str | None


def _encode_cursor(row: dict) -> str:
    raw = f"{as_utc(row['created_at']).isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), job_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("The cursor is not one this API returned.") from exc


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- creating and reading ---------------------------------------------

    def create(self, request: dict, queue: str, *, owner: str, idempotency_key: str | None = None,
               parent_id: str | None = None) -> tuple[dict, bool]:
        """Insert a queued job for ``owner``. Returns (job, created); created is False when
        the owner's Idempotency-Key already named the same request."""
        fingerprint = request_fingerprint(request)
        if idempotency_key is not None:
            existing = self._by_idempotency_key(owner, idempotency_key)
            if existing is not None:
                return self._same_request(existing, fingerprint), False
        row = {
            "id": uuid.uuid4().hex, "name": json_safe(request.get("name")), "owner": owner, "status": QUEUED,
            "queue": queue, "request": json_safe(request), "request_hash": fingerprint,
            "idempotency_key": idempotency_key, "parent_id": parent_id, "created_at": utcnow(),
            "attempts": 0, "cancel_requested": False, "progress_epoch": 0,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(jobs).values(**row))
        except IntegrityError:
            existing = self._by_idempotency_key(owner, idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return self._same_request(existing, fingerprint), False
        return self.get(row["id"], owner=owner), True

    @staticmethod
    def _same_request(existing: dict, fingerprint: str) -> dict:
        if existing["request_hash"] != fingerprint:
            raise IdempotencyConflict("This Idempotency-Key was already used with a different request.")
        return existing

    def _by_idempotency_key(self, owner: str, key: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == key)
                               ).mappings().first()
        return self._row(row)

    def get(self, job_id: str, *, owner: str | None) -> dict | None:
        """A job by id; ``owner`` limits it to that owner's jobs (None: any owner, for
        workers and admins). Another owner's job is None, as if it did not exist."""
        if not isinstance(job_id, str) or not _ID_PATTERN.match(job_id):
            return None
        query = select(jobs).where(jobs.c.id == job_id)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return self._row(row)

    def list(self, *, owner: str | None, status: str | None = None, limit: int = 20,
             cursor: str | None = None) -> Page:
        """Newest first; ``owner`` None lists every owner's jobs."""
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if status:
            query = query.where(jobs.c.status == status)
        if cursor:
            stamp, last_id = _decode_cursor(cursor)
            query = query.where(or_(jobs.c.created_at < stamp,
                                    and_(jobs.c.created_at == stamp, jobs.c.id < last_id)))
        with self.engine.connect() as conn:
            rows = [self._row(r) for r in conn.execute(query).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, _encode_cursor(rows[-1]) if more and rows else None)

    def epochs(self, job_id: str, after: int = 0) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(job_epochs.c.metrics)
                                .where(job_epochs.c.job_id == job_id, job_epochs.c.epoch > after)
                                .order_by(job_epochs.c.epoch)).scalars().all()
        return list(rows)

    def logs(self, job_id: str) -> list[tuple[datetime, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(job_logs.c.at, job_logs.c.line).where(job_logs.c.job_id == job_id)
                                .order_by(job_logs.c.id)).all()
        return [(as_utc(at), line) for at, line in rows]

    @staticmethod
    def _row(row: Any) -> dict | None:
        if row is None:
            return None
        job = dict(row)
        for key in ("created_at", "started_at", "finished_at", "heartbeat_at"):
            job[key] = as_utc(job[key])
        return job

    def count_active(self, owner: str) -> int:
        """The owner's queued and running jobs (the per-owner cap counts these)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.owner == owner, jobs.c.status.in_([QUEUED, RUNNING]))).scalar())

    def active_upload_uses(self, dataset_id: str | None = None) -> list[tuple[str, str]]:
        """(job id, upload id) of queued and running jobs that train on an upload (on
        ``dataset_id`` only, when given). Only unfinished jobs are read, and there are
        few of them, so requests are matched here rather than with per-database JSON
        operators."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.request)
                                .where(jobs.c.status.in_([QUEUED, RUNNING]))).all()
        uses = [(job_id, ((request or {}).get("dataset") or {}).get("id")) for job_id, request in rows]
        return [(job_id, used) for job_id, used in uses if used and (dataset_id is None or used == dataset_id)]

    def finished_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Ids of jobs that finished before ``cutoff``, oldest first (retention)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(jobs.c.id).where(jobs.c.status.in_(FINISHED), jobs.c.finished_at < cutoff)
                                     .order_by(jobs.c.finished_at).limit(limit)).scalars())

    def delete_finished(self, job_id: str, *, owner: str | None) -> bool:
        """Remove a finished job's row, epochs and log lines. False when the job is not
        finished (queued or running jobs are never deleted) or is not there (for ``owner``)."""
        condition = [jobs.c.id == job_id, jobs.c.status.in_(FINISHED)]
        if owner is not None:
            condition.append(jobs.c.owner == owner)
        with self.engine.begin() as conn:
            deleted = conn.execute(delete(jobs).where(*condition)).rowcount == 1
            if deleted:
                conn.execute(delete(job_epochs).where(job_epochs.c.job_id == job_id))
                conn.execute(delete(job_logs).where(job_logs.c.job_id == job_id))
        return deleted

    def discard(self, job_id: str) -> None:
        """Remove a queued job that was never published (its message could not be sent)."""
        with self.engine.begin() as conn:
            conn.execute(delete(jobs).where(jobs.c.id == job_id, jobs.c.status == QUEUED))

    # --- transitions ------------------------------------------------------

    def _transition(self, job_id: str, allowed: Iterable[str], *, owner: str | None = None, **values: Any) -> bool:
        condition = [jobs.c.id == job_id, jobs.c.status.in_(list(allowed))]
        if owner is not None:
            condition.append(jobs.c.owner == owner)
        with self.engine.begin() as conn:
            result = conn.execute(update(jobs).where(*condition).values(**values))
        return result.rowcount == 1

    def start(self, job_id: str, worker: str, stale_after_s: float = STALE_AFTER_S) -> dict | None:
        """queued -> running. A job still marked running whose heartbeat stopped more than
        ``stale_after_s`` ago lost its worker (the broker redelivered its message): it is
        taken over and trained from the start. None when the job is not ours to run."""
        job = self.get(job_id, owner=None)
        if job is None:
            return None
        now = utcnow()
        values = dict(status=RUNNING, started_at=now, heartbeat_at=now, worker=worker, attempts=job["attempts"] + 1)
        if self._transition(job_id, [QUEUED], **values):
            return self.get(job_id, owner=None)
        cutoff = now - timedelta(seconds=stale_after_s)
        with self.engine.begin() as conn:
            taken = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == RUNNING,
                                                    jobs.c.cancel_requested.is_(False),
                                                    jobs.c.heartbeat_at < cutoff)
                                 .values(progress_epoch=0, summary=None, steps=None, initial_probes=None,
                                         diagnosis=None, **values)).rowcount == 1
            if taken:
                conn.execute(delete(job_epochs).where(job_epochs.c.job_id == job_id))
        return self.get(job_id, owner=None) if taken else None

    def request_cancel(self, job_id: str, *, owner: str | None) -> str | None:
        """Cancel a queued job at once; ask a running one to stop. Returns the
        status the job had, or None when it had already finished (or is not there)."""
        if self._transition(job_id, [QUEUED], owner=owner, status=CANCELLED, finished_at=utcnow(),
                            cancel_requested=True):
            return QUEUED
        if self._transition(job_id, [RUNNING], owner=owner, cancel_requested=True):
            return RUNNING
        return None

    def heartbeat(self, job_id: str) -> bool:
        """Mark the job alive; returns whether a cancel was requested."""
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == RUNNING)
                         .values(heartbeat_at=utcnow()))
            return bool(conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar())

    def record_epoch(self, job_id: str, metrics: dict, summary: dict | None, *, steps: dict | None = None,
                     initial_probes: dict | None = None, diagnosis: dict | None = None) -> None:
        """One finished epoch: its curves row, the progress, the summary and diagnosis so far."""
        epoch = int(metrics["epoch"])
        values: dict[str, Any] = {"progress_epoch": epoch, "summary": json_safe(summary), "heartbeat_at": utcnow()}
        if steps is not None:
            values["steps"] = json_safe(steps)
        if initial_probes is not None:
            values["initial_probes"] = json_safe(initial_probes)
        if diagnosis is not None:
            values["diagnosis"] = json_safe(diagnosis)
        with self.engine.begin() as conn:
            conn.execute(delete(job_epochs).where(job_epochs.c.job_id == job_id, job_epochs.c.epoch == epoch))
            conn.execute(insert(job_epochs).values(job_id=job_id, epoch=epoch, metrics=json_safe(metrics)))
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

    def set_data_info(self, job_id: str, data_info: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(data_info=json_safe(data_info)))

    def set_diagnosis(self, job_id: str, diagnosis: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(diagnosis=json_safe(diagnosis)))

    def finish(self, job_id: str, status: str, *, summary: dict | None = None, error: dict | None = None,
               diagnosis: dict | None = None, artifacts: dict | None = None, setup_s: float | None = None,
               train_s: float | None = None) -> bool:
        job = self.get(job_id, owner=None)
        if job is None:
            return False
        now = utcnow()
        timings = {
            "queued_s": (job["started_at"] - job["created_at"]).total_seconds() if job["started_at"] else None,
            "setup_s": setup_s, "train_s": train_s,
            "total_s": (now - job["started_at"]).total_seconds() if job["started_at"] else None,
        }
        values: dict[str, Any] = {"status": status, "finished_at": now, "timings": json_safe(timings),
                                  "error": json_safe(error)}
        if summary is not None:
            values["summary"] = json_safe(summary)
        if diagnosis is not None:
            values["diagnosis"] = json_safe(diagnosis)
        if artifacts is not None:
            values["artifacts"] = json_safe(artifacts)
        return self._transition(job_id, [RUNNING], **values)

    def requeue(self, job_id: str) -> bool:
        """running -> queued, forgetting partial results (a worker is shutting down)."""
        with self.engine.begin() as conn:
            conn.execute(delete(job_epochs).where(job_epochs.c.job_id == job_id))
        return self._transition(job_id, [RUNNING], status=QUEUED, started_at=None, heartbeat_at=None,
                                worker=None, progress_epoch=0, summary=None, steps=None, initial_probes=None,
                                diagnosis=None)

    def log(self, job_id: str, line: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(job_logs).values(job_id=job_id, at=utcnow(), line=json_safe(line)))

