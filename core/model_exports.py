"""The job store's side of a finished job's model exports (.pt2 and ONNX).

A job is done when its weights, curves and diagnosis are written; its exports run
after it, as a task of their own (workers/model_export.py). ``jobs.model_status``
follows them: ``pending`` from the job's final write, then ``ready`` or ``failed``.
Null means the job left no weights (failed or cancelled before an epoch), or it
finished before exports ran apart: with weights, those read as ready (their
artifacts say what was exported).

An export task *claims* the export (a conditional UPDATE that bumps
``model_attempts`` and stamps ``model_claimed_at``) and its final write is fenced by
that attempt number, so a duplicate message, or a re-published one after a lost
worker, never overwrites a newer attempt. The recovery sweep (workers/recovery.py)
re-publishes pending exports whose message or worker was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from core.db import jobs
from core.job_status import as_utc, utcnow
from core.jsonsafe import json_safe

MODEL_PENDING, MODEL_READY, MODEL_FAILED = "pending", "ready", "failed"
MODEL_STATUSES = (MODEL_PENDING, MODEL_READY, MODEL_FAILED)


@dataclass(frozen=True)
class ExportClaim:
    job: dict
    attempt: int  # the fence of this export's final write


@dataclass(frozen=True)
class PendingExport:
    job_id: str
    queue: str
    finished_at: datetime | None
    claimed_at: datetime | None  # None: no export task has taken it (yet)
    attempts: int


class ModelExportStore:
    engine: Engine

    def claim_export(self, job_id: str, *, stale_before: datetime) -> ExportClaim | None:
        """Take a pending export: when no task holds it, or the one that did went quiet before
        ``stale_before`` (its worker was lost). None: nothing to do (not pending, another task
        is on it, or the job is gone)."""
        now = utcnow()
        free = (jobs.c.model_claimed_at.is_(None)) | (jobs.c.model_claimed_at < stale_before)
        with self.engine.begin() as conn:
            taken = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.model_status == MODEL_PENDING, free)
                                 .values(model_claimed_at=now, model_attempts=jobs.c.model_attempts + 1)).rowcount
            if taken != 1:
                return None
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        job = dict(row)
        return ExportClaim(job, int(job["model_attempts"]))

    def finish_export(self, claim: ExportClaim, status: str, *, saved: dict, error: str | None = None) -> bool:
        """The export's final write: its artifact entries merged into the job's, and the status.
        False when this attempt lost its claim (a newer attempt took over) or the job is gone."""
        job_id = claim.job["id"]
        fence = [jobs.c.id == job_id, jobs.c.model_status == MODEL_PENDING, jobs.c.model_attempts == claim.attempt]
        with self.engine.begin() as conn:
            row = conn.execute(select(jobs.c.artifacts).where(*fence)).first()
            if row is None:
                return False
            merged = {**(row[0] or {}), **json_safe(saved)}
            return conn.execute(update(jobs).where(*fence).values(
                artifacts=merged, model_status=status, model_error=error)).rowcount == 1

    def fail_export(self, job_id: str, attempt: int, error: str) -> bool:
        """End a pending export failed (recovery: its workers were lost too often), fenced by ``attempt``."""
        with self.engine.begin() as conn:
            return conn.execute(update(jobs).where(
                jobs.c.id == job_id, jobs.c.model_status == MODEL_PENDING, jobs.c.model_attempts == attempt)
                .values(model_status=MODEL_FAILED, model_error=error)).rowcount == 1

    def release_export(self, job_id: str, attempt: int) -> bool:
        """Forget a lost task's claim, so that the re-published message can take the export."""
        with self.engine.begin() as conn:
            return conn.execute(update(jobs).where(
                jobs.c.id == job_id, jobs.c.model_status == MODEL_PENDING, jobs.c.model_attempts == attempt)
                .values(model_claimed_at=None)).rowcount == 1

    def pending_exports(self, limit: int = 1000) -> list[PendingExport]:
        query = (select(jobs.c.id, jobs.c.queue, jobs.c.finished_at, jobs.c.model_claimed_at, jobs.c.model_attempts)
                 .where(jobs.c.model_status == MODEL_PENDING).order_by(jobs.c.finished_at).limit(limit))
        with self.engine.connect() as conn:
            return [PendingExport(r[0], r[1], as_utc(r[2]), as_utc(r[3]), int(r[4] or 0))
                    for r in conn.execute(query)]
