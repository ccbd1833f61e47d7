"""Jobs made by the service itself rather than by a POST /v1/jobs: a sweep's children, a
remedy's attempts. Torch-free and Flask-free, so that both the API (a sweep's first children)
and the workers (the next ones, when a child ends) create them the same way as ``submit``
in service/jobs_api.py does: insert the queued row, keep the owner's active-jobs cap, publish.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from celery import Celery

from core.jobstore import JobStore
from core.queueing import publish_job
from core.settings import Settings

log = logging.getLogger("trainrx.children")


def create_child(store: JobStore, celery: Celery, settings: Settings, owner: str, request: dict, queue: str,
                 **links: Any) -> dict | None:
    """Queue a child job of ``owner`` running the normalised ``request``. Returns None, having
    created nothing, when the owner already has TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER queued or
    running jobs: the parent waits and tries again on its next advance. Counted after the insert,
    as ``submit`` does, so that two creators racing for the last slot cannot both take it."""
    job, _ = store.create(request, queue, owner=owner, **links)
    if store.count_active(owner) > settings.quotas.max_active_jobs_per_owner:
        store.discard(job["id"])
        return None
    publish(celery, [job])
    return job


def publish(celery: Celery, jobs: Iterable[dict]) -> None:
    """Publish queued children. A message that cannot be sent is not an error here: the job stays
    queued in the database, and the recovery sweep publishes every queued job that has no message."""
    for job in jobs:
        try:
            publish_job(celery, job["id"], job["queue"], retry=False)
        except Exception:
            log.warning("job %s: publishing failed; the recovery sweep publishes it", job["id"], exc_info=True)
