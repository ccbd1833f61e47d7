"""Deleting what is no longer wanted: a finished job on request (DELETE /v1/jobs/{id}),
and, when the operator sets ``TRAINRX_RETENTION_DAYS``, finished jobs and unused
uploads older than that. Nothing is deleted any other way."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from core.artifacts import LocalArtifactStore
from core.db import job_epochs, job_logs, jobs
from core.jobstore import FINISHED, JobStore, utcnow
from core.uploads import UploadStore

log = logging.getLogger("trainrx.retention")
SWEEP_BATCH = 500


def delete_finished_job(store: JobStore, artifacts: LocalArtifactStore, job_id: str) -> bool:
    """Remove a finished job: its row, epochs, log lines and artifacts. False when the
    job is not finished (queued or running jobs are never deleted) or does not exist."""
    with store.engine.begin() as conn:
        deleted = conn.execute(delete(jobs).where(jobs.c.id == job_id, jobs.c.status.in_(FINISHED))).rowcount == 1
        if deleted:
            conn.execute(delete(job_epochs).where(job_epochs.c.job_id == job_id))
            conn.execute(delete(job_logs).where(job_logs.c.job_id == job_id))
    if deleted:
        artifacts.delete_job(job_id)
    return deleted


@dataclass
class SweepResult:
    jobs: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)


def sweep(store: JobStore, uploads: UploadStore, artifacts: LocalArtifactStore, days: int,
          now: datetime | None = None) -> SweepResult:
    """Delete jobs that finished more than ``days`` ago, and uploads neither created
    nor trained on in that time that no queued or running job names."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    result = SweepResult()
    with store.engine.connect() as conn:
        expired = conn.execute(select(jobs.c.id).where(jobs.c.status.in_(FINISHED), jobs.c.finished_at < cutoff)
                               .order_by(jobs.c.finished_at).limit(SWEEP_BATCH)).scalars().all()
    for job_id in expired:
        if delete_finished_job(store, artifacts, job_id):
            result.jobs.append(job_id)
    in_use = uploads.ids_in_use()
    for dataset_id in uploads.unused_since(cutoff, SWEEP_BATCH):
        if dataset_id not in in_use and uploads.delete(dataset_id):
            result.datasets.append(dataset_id)
    if result.jobs or result.datasets:
        log.info("retention (%d days): deleted %d jobs and %d uploads", days, len(result.jobs),
                 len(result.datasets))
    return result
