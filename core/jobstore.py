"""Reading and writing jobs. Every status change is a conditional update, so
that a cancel racing a worker's start (or two workers racing each other) can
never both win. What callers of the API do lives here; what a worker does to
its run of a job (start, heartbeat, epochs, finish, the reaper) lives in
core/job_runs.py, mixed into the same JobStore."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.db import datasets, job_epochs, job_logs, jobs
from core.job_runs import JobRunStore, Superseded, status_change  # noqa: F401  (Superseded: part of the interface)
# Statuses and helpers are re-exported: most of the code imports them from here.
from core.job_status import (CANCELLED, FAILED, FINISHED, ID_PATTERN, QUEUED, RUNNING, SUCCEEDED,  # noqa: F401
                             as_utc, utcnow)
from core.jsonsafe import json_safe

_BULKY = ("steps", "initial_probes", "data_info", "error", "timings", "artifacts")  # not read by list views
# A client may retry a POST with its Idempotency-Key for this long; then the key is free again.
IDEMPOTENCY_TTL = timedelta(hours=24)
WINDOW_LIMIT = 1000  # jobs in_flight_or_since reads at most: the newest ones


def request_fingerprint(request: dict) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


class UploadGone(Exception):
    """The job's upload was deleted between validation and the insert."""


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


# Columns that tie a job to what made it, besides ``parent_id``: create(**links) sets them.
LINKS = ("sweep_id", "sweep_index")


def job_row(request: dict, queue: str, *, owner: str, fingerprint: str | None = None,
            idempotency_key: str | None = None, parent_id: str | None = None, **links: Any) -> dict:
    """A new queued job's row (JobStore.create inserts it; a sweep inserts its children's rows
    under its own lock, core/sweeps.py)."""
    unknown = set(links) - set(LINKS)
    if unknown:
        raise TypeError(f"unknown job links: {sorted(unknown)}")
    return {
        "id": uuid.uuid4().hex, "name": json_safe(request.get("name")), "owner": owner, "status": QUEUED,
        "queue": queue, "request": json_safe(request), "request_hash": fingerprint or request_fingerprint(request),
        "idempotency_key": idempotency_key, "parent_id": parent_id, "created_at": utcnow(),
        "attempts": 0, "cancel_requested": False, "progress_epoch": 0,
        "dataset_id": (request.get("dataset") or {}).get("id"), **links,
    }


class JobStore(JobRunStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- creating and reading ---------------------------------------------

    def create(self, request: dict, queue: str, *, owner: str, idempotency_key: str | None = None,
               parent_id: str | None = None, **links: Any) -> tuple[dict, bool]:
        """Insert a queued job for ``owner``. Returns (job, created); created is False when
        the owner's Idempotency-Key named the same request (and the same parent) in the last
        IDEMPOTENCY_TTL. A resubmit's fingerprint includes its parent, so a key used for the
        parent's own POST can never answer with the parent."""
        fingerprint = request_fingerprint(request if parent_id is None else {"request": request, "parent": parent_id})
        if idempotency_key is not None:
            existing = self._by_idempotency_key(owner, idempotency_key)
            if existing is not None:
                return self._same_request(existing, fingerprint), False
        row = job_row(request, queue, owner=owner, fingerprint=fingerprint, idempotency_key=idempotency_key,
                      parent_id=parent_id, **links)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(jobs).values(**row))
                if row["dataset_id"] is not None and not self._upload_still_there(conn, row["dataset_id"]):
                    raise UploadGone(f"The uploaded dataset {row['dataset_id']} was deleted meanwhile.")
        except IntegrityError:
            existing = self._by_idempotency_key(owner, idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return self._same_request(existing, fingerprint), False
        return self.get(row["id"], owner=owner), True

    @staticmethod
    def _upload_still_there(conn, dataset_id: str) -> bool:
        """Within the insert's transaction: the upload exists, and is locked FOR SHARE until the
        job is committed (UploadStore.delete locks it FOR UPDATE), so a job and the deletion of
        its upload cannot both win."""
        return conn.execute(select(datasets.c.id).where(datasets.c.id == dataset_id)
                            .with_for_update(read=True)).first() is not None

    @staticmethod
    def _same_request(existing: dict, fingerprint: str) -> dict:
        if existing["request_hash"] != fingerprint:
            raise IdempotencyConflict("This Idempotency-Key was already used with a different request.")
        return existing

    def _by_idempotency_key(self, owner: str, key: str) -> dict | None:
        """The owner's job made with ``key`` in the last IDEMPOTENCY_TTL; an older one gives
        its key up (so the unique (owner, key) constraint lets a new job take it)."""
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == key,
                                            jobs.c.created_at < utcnow() - IDEMPOTENCY_TTL)
                         .values(idempotency_key=None))
            row = conn.execute(select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == key)
                               ).mappings().first()
        return self._row(row)

    def get(self, job_id: str, *, owner: str | None) -> dict | None:
        """A job by id; ``owner`` limits it to that owner's jobs (None: any owner, for
        workers and admins). Another owner's job is None, as if it did not exist."""
        if not isinstance(job_id, str) or not ID_PATTERN.match(job_id):
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

    def epochs(self, job_id: str, after: int = 0, limit: int | None = None) -> list[dict]:
        """The curves rows after epoch ``after``, in order (at most ``limit``)."""
        query = (select(job_epochs.c.metrics).where(job_epochs.c.job_id == job_id, job_epochs.c.epoch > after)
                 .order_by(job_epochs.c.epoch).limit(limit))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars().all())

    def sampled_steps(self, job_id: str, after: int = 0) -> dict | None:
        """The training steps sampled in the epochs after ``after``, as one set of lists
        (None when the job recorded none this way: older jobs keep them on the job row)."""
        with self.engine.connect() as conn:
            parts = conn.execute(select(job_epochs.c.steps).where(
                job_epochs.c.job_id == job_id, job_epochs.c.epoch > after, job_epochs.c.steps.is_not(None))
                .order_by(job_epochs.c.epoch)).scalars().all()
        merged: dict[str, list] = {}
        for part in parts:  # JSON null (an epoch without probes) reads back as None
            for key, values in (part or {}).items():
                merged.setdefault(key, []).extend(values)
        return merged or None

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

    def in_flight_or_since(self, owner: str, since: datetime, limit: int = WINDOW_LIMIT) -> list[dict]:
        """The owner's queued and running jobs, and those created or finished after ``since``,
        oldest first: what the owner-level event stream (service/owner_events_api.py) compares
        with what its client already has. Without the bulky columns (steps, probes, logs).
        Past ``limit`` jobs, the newest ``limit`` (so a full window is ``limit`` long)."""
        columns = [c for c in jobs.c if c.name not in _BULKY]
        query = (select(*columns).where(jobs.c.owner == owner, or_(
            jobs.c.status.in_([QUEUED, RUNNING]), jobs.c.created_at > since, jobs.c.finished_at > since))
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [self._row(r) for r in conn.execute(query).mappings()][::-1]

    def active_upload_uses(self, dataset_id: str | None = None) -> list[tuple[str, str]]:
        """(job id, upload id) of queued and running jobs that train on an upload (on
        ``dataset_id`` only, when given)."""
        query = select(jobs.c.id, jobs.c.dataset_id).where(jobs.c.status.in_([QUEUED, RUNNING]),
                                                            jobs.c.dataset_id.is_not(None))
        if dataset_id is not None:
            query = query.where(jobs.c.dataset_id == dataset_id)
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(query)]

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

    def request_cancel(self, job_id: str, *, owner: str | None) -> str | None:
        """Cancel a queued job at once; ask a running one to stop. Returns the
        status the job had, or None when it had already finished (or is not there)."""
        if self._transition(job_id, [QUEUED], owner=owner, **status_change(
                status=CANCELLED, finished_at=utcnow(), cancel_requested=True)):
            return QUEUED
        if self._transition(job_id, [RUNNING], owner=owner, cancel_requested=True):
            return RUNNING
        return None
