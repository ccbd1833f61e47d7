"""Deleting what is no longer wanted: a finished job on request (DELETE /v1/jobs/{id}),
and, when the operator sets ``TRAINRX_RETENTION_DAYS``, finished jobs and unused
uploads older than that. Nothing is deleted any other way."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.artifacts import ArtifactStore
from core.jobstore import JobStore, utcnow
from core.uploads import DELETED, UploadStore

log = logging.getLogger("trainrx.retention")
SWEEP_BATCH = 500


def delete_finished_job(store: JobStore, artifacts: ArtifactStore, job_id: str, *,
                        owner: str | None) -> bool:
    """Remove a finished job: its row, epochs, log lines and artifacts. False when the
    job is not finished (queued or running jobs are never deleted) or is not there
    (for ``owner``; None: any owner)."""
    deleted = store.delete_finished(job_id, owner=owner)
    if deleted:
        artifacts.delete_job(job_id)
    return deleted


@dataclass
class SweepResult:
    jobs: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)


def sweep(store: JobStore, uploads: UploadStore, artifacts: ArtifactStore, days: int,
          now: datetime | None = None) -> SweepResult:
    """Delete jobs that finished more than ``days`` ago, and uploads neither created
    nor trained on in that time that no queued or running job names."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    result = SweepResult()
    for job_id in store.finished_before(cutoff, SWEEP_BATCH):
        if delete_finished_job(store, artifacts, job_id, owner=None):
            result.jobs.append(job_id)
    in_use = {used for _, used in store.active_upload_uses()}
    for dataset_id in uploads.unused_since(cutoff, SWEEP_BATCH):
        if dataset_id not in in_use and uploads.delete(dataset_id, owner=None) == DELETED:
            result.datasets.append(dataset_id)
    if result.jobs or result.datasets:
        log.info("retention (%d days): deleted %d jobs and %d uploads", days, len(result.jobs),
                 len(result.datasets))
    return result
