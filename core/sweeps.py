"""Sweeps: storing them, and moving them on.

A sweep's children are created lazily: never more than ``max_parallel`` of them queued or
running at a time, and never past the owner's active-jobs cap (a full cap means the sweep
waits). ``advance`` decides under the sweep's row lock (an UPDATE of the row, which SQLite
and PostgreSQL both hold until the commit), counts the unfinished children and inserts the
next ones in the same transaction, so two advancers racing (two workers ending children, a
worker and the recovery sweep, a cancel) can neither exceed ``max_parallel`` nor create one
index twice. The jobs are published after the commit; one whose message is lost stays queued
and the recovery sweep publishes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.child_jobs import publish
from core.db import jobs, sweeps
from core.jobstore import (IDEMPOTENCY_TTL, QUEUED, RUNNING, IdempotencyConflict, InvalidCursor, JobStore, Page,
                           _decode_cursor, _encode_cursor, as_utc, job_row, request_fingerprint, utcnow)
from core.jsonsafe import json_safe
from core.queueing import queue_for
from core.settings import Settings

SWEEP_RUNNING, SWEEP_DONE, SWEEP_CANCELLED = "running", "done", "cancelled"
SWEEP_STATUSES = (SWEEP_RUNNING, SWEEP_DONE, SWEEP_CANCELLED)
UNFINISHED = (QUEUED, RUNNING)
# What a sweep reads of its children: no curves, probes or logs.
CHILD_COLUMNS = ("id", "status", "sweep_index", "summary", "diagnosis", "timings", "error", "created_at",
                 "finished_at")

__all__ = ["SweepStore", "SweepAdvancer", "InvalidCursor", "IdempotencyConflict", "SWEEP_STATUSES"]


@dataclass
class Advanced:
    created: list[dict]
    status: str


class SweepStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, owner: str, spec: dict, plan: list[dict], *,
               idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Insert a running sweep (no children yet: ``advance`` makes them). Returns (sweep,
        created); created is False when the owner's Idempotency-Key named the same body in the
        last IDEMPOTENCY_TTL (the first sweep is returned); a different body raises
        IdempotencyConflict, as for jobs."""
        fingerprint = request_fingerprint(spec)
        if idempotency_key is not None:
            existing = self._by_idempotency_key(owner, idempotency_key)
            if existing is not None:
                return JobStore._same_request(existing, fingerprint), False
        row = {"id": uuid.uuid4().hex, "owner": owner, "name": spec.get("name"), "status": SWEEP_RUNNING,
               "spec": json_safe(spec), "plan": json_safe(plan), "size": len(plan),
               "max_parallel": spec["max_parallel"], "next_index": 0, "created_at": utcnow(),
               "idempotency_key": idempotency_key, "request_hash": fingerprint}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(sweeps).values(**row))
        except IntegrityError:  # a concurrent POST with the same key won
            existing = self._by_idempotency_key(owner, idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return JobStore._same_request(existing, fingerprint), False
        return self.get(row["id"], owner=owner), True

    def _by_idempotency_key(self, owner: str, key: str) -> dict | None:
        """The owner's sweep made with ``key`` in the last IDEMPOTENCY_TTL; an older one gives its key up."""
        with self.engine.begin() as conn:
            conn.execute(update(sweeps).where(sweeps.c.owner == owner, sweeps.c.idempotency_key == key,
                                              sweeps.c.created_at < utcnow() - IDEMPOTENCY_TTL)
                         .values(idempotency_key=None))
            return _row(conn.execute(select(sweeps).where(sweeps.c.owner == owner, sweeps.c.idempotency_key == key))
                        .mappings().first())

    def get(self, sweep_id: str, *, owner: str | None) -> dict | None:
        """A sweep by id; another owner's sweep is None (as if it did not exist)."""
        if not isinstance(sweep_id, str) or len(sweep_id) > 32:
            return None
        query = select(sweeps).where(sweeps.c.id == sweep_id)
        if owner is not None:
            query = query.where(sweeps.c.owner == owner)
        with self.engine.connect() as conn:
            return _row(conn.execute(query).mappings().first())

    def list(self, *, owner: str | None, limit: int = 20, cursor: str | None = None) -> Page:
        """Newest first, without the plans (the list shows no children)."""
        columns = [c for c in sweeps.c if c.name not in ("plan", "request_hash")]
        query = select(*columns).order_by(sweeps.c.created_at.desc(), sweeps.c.id.desc()).limit(limit + 1)
        if owner is not None:
            query = query.where(sweeps.c.owner == owner)
        if cursor:
            stamp, last_id = _decode_cursor(cursor)
            query = query.where(or_(sweeps.c.created_at < stamp,
                                    and_(sweeps.c.created_at == stamp, sweeps.c.id < last_id)))
        with self.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(query).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, _encode_cursor(rows[-1]) if more and rows else None)

    def children(self, sweep_id: str) -> list[dict]:
        """The sweep's child jobs that exist (a deleted one is gone), by index."""
        query = (select(*(jobs.c[name] for name in CHILD_COLUMNS)).where(jobs.c.sweep_id == sweep_id)
                 .order_by(jobs.c.sweep_index))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def running_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(sweeps.c.id).where(sweeps.c.status == SWEEP_RUNNING)
                                     .order_by(sweeps.c.created_at)).scalars())

    def advance(self, sweep_id: str, settings: Settings, celery: Celery | None) -> Advanced | None:
        """Create the next children the sweep has room for, or mark it done when every child was
        created and has ended. Safe to repeat and to race. None: no such sweep."""
        if not self._may_move(sweep_id):
            return Advanced([], SWEEP_RUNNING)
        with self.engine.begin() as conn:
            # The lock: this UPDATE holds the sweep's row (PostgreSQL) or the database's write lock
            # (SQLite) until the commit; a second advancer waits here and then sees this one's children.
            locked = conn.execute(update(sweeps).where(sweeps.c.id == sweep_id)
                                  .values(next_index=sweeps.c.next_index)).rowcount
            if not locked:
                return None
            sweep = _row(conn.execute(select(sweeps).where(sweeps.c.id == sweep_id)).mappings().first())
            if sweep["status"] != SWEEP_RUNNING:
                return Advanced([], sweep["status"])
            unfinished = _count(conn, jobs.c.sweep_id == sweep_id)
            room = min(sweep["max_parallel"] - unfinished, sweep["size"] - sweep["next_index"])
            if room > 0:  # the owner's cap counts every queued or running job of theirs, this sweep's too
                room = min(room, settings.quotas.max_active_jobs_per_owner - _count(conn, jobs.c.owner ==
                                                                                    sweep["owner"]))
            created = []
            for child in sweep["plan"][sweep["next_index"]:sweep["next_index"] + max(room, 0)]:
                request = child["request"]
                row = job_row(request, queue_for(request["device"], settings.default_queue), owner=sweep["owner"],
                              sweep_id=sweep_id, sweep_index=child["index"])
                if row["dataset_id"] is not None and not JobStore._upload_still_there(conn, row["dataset_id"]):
                    break  # the upload was deleted: nothing more can run; the sweep ends when its children do
                conn.execute(insert(jobs).values(**row))
                created.append(row)
            status = SWEEP_RUNNING
            values: dict[str, Any] = {"next_index": sweep["next_index"] + len(created)}
            upload_gone = room > 0 and len(created) < room
            if unfinished == 0 and not created and (sweep["next_index"] >= sweep["size"] or upload_gone):
                status, values = SWEEP_DONE, {"status": SWEEP_DONE, "finished_at": utcnow()}
            conn.execute(update(sweeps).where(sweeps.c.id == sweep_id).values(**values))
        if created and celery is not None:
            publish(celery, created)
        return Advanced(created, status)

    def _may_move(self, sweep_id: str) -> bool:
        """Without the lock: whether the sweep may have a child to create or may be done. The
        periodic advance asks this of every running sweep, and most have nothing to do; a stale
        no is harmless (a child's end is committed before its worker advances, and the next
        periodic advance looks again)."""
        with self.engine.connect() as conn:
            sweep = conn.execute(select(sweeps.c.status, sweeps.c.size, sweeps.c.next_index, sweeps.c.max_parallel)
                                 .where(sweeps.c.id == sweep_id)).mappings().first()
            if sweep is None or sweep["status"] != SWEEP_RUNNING:
                return True  # the locked path answers these
            busy = _count(conn, jobs.c.sweep_id == sweep_id)
        return (busy < sweep["max_parallel"] and sweep["next_index"] < sweep["size"]) or busy == 0

    def cancel(self, sweep_id: str, *, owner: str | None) -> list[str] | None:
        """Mark a running sweep cancelled (it creates no more children) and return its unfinished
        children, to cancel through the jobs' own path. Idempotent: a finished sweep returns
        its unfinished children too (none, or those a first cancel could not reach). None: no such sweep."""
        condition = [sweeps.c.id == sweep_id]
        if owner is not None:
            condition.append(sweeps.c.owner == owner)
        with self.engine.begin() as conn:
            # Under the same lock as ``advance``: once this commits, no advancer creates another child.
            found = conn.execute(update(sweeps).where(*condition).values(next_index=sweeps.c.next_index)).rowcount
            if not found:
                return None
            conn.execute(update(sweeps).where(*condition, sweeps.c.status == SWEEP_RUNNING)
                         .values(status=SWEEP_CANCELLED, finished_at=utcnow()))
        with self.engine.connect() as conn:
            return list(conn.execute(select(jobs.c.id).where(jobs.c.sweep_id == sweep_id,
                                                             jobs.c.status.in_(UNFINISHED))).scalars())


def _count(conn, condition) -> int:
    return int(conn.execute(select(func.count()).select_from(jobs).where(condition, jobs.c.status.in_(UNFINISHED)))
               .scalar())


def _row(row: Any) -> dict | None:
    if row is None:
        return None
    sweep = dict(row)
    for key in ("created_at", "finished_at"):
        sweep[key] = as_utc(sweep[key])
    return sweep


class SweepAdvancer:
    """The sweeps' entry in workers/parents.py ADVANCERS."""

    name = "sweeps"

    def job_ended(self, settings: Settings, store: JobStore, celery: Celery, job: dict) -> None:
        if job.get("sweep_id"):
            SweepStore(store.engine).advance(job["sweep_id"], settings, celery)

    def advance_all(self, settings: Settings, store: JobStore, celery: Celery) -> int:
        sweeps_ = SweepStore(store.engine)
        moved = 0
        for sweep_id in sweeps_.running_ids():
            advanced = sweeps_.advance(sweep_id, settings, celery)
            moved += bool(advanced and (advanced.created or advanced.status != SWEEP_RUNNING))
        return moved

