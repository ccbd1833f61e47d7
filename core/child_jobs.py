"""Jobs made by the service itself rather than by a POST /v1/jobs: a sweep's children, a
verified remedy's attempts.

Torch-free and Flask-free, so that both the API (the first children, in the parent's POST) and
the workers (the next ones, when a child ends) create them the same way as ``submit`` in
service/jobs_api.py does: insert the queued row, keep the owner's active-jobs cap, publish. A
child is a normal job of its parent's owner, counted in that cap; when the cap is full the child
is not made (the parent waits and its next advance tries again) instead of failing.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from celery import Celery

from core.jobstore import JobStore
from core.queueing import publish_job
from core.settings import Settings

log = logging.getLogger("trainrx.children")


def start_child(store: JobStore, celery: Celery, request: dict, *, parent: dict, key: str, max_active: int,
                remedy_id: str | None = None) -> dict | None:
    """The child job for ``key`` (an idempotency key naming the parent's slot, so that two advancers
    racing for the same slot make one job), queued and published; None when the owner's quota of
    active jobs is full."""
    owner = parent["owner"]
    if store.count_active(owner) >= max_active:
        return None
    job, created = store.create(request, parent["queue"], owner=owner, idempotency_key=key, parent_id=parent["id"],
                                remedy_id=remedy_id)
    if not created:
        return job  # another advancer made it (and published it, or the recovery sweep will)
    return _within_cap(store, celery, job, max_active)


def create_child(store: JobStore, celery: Celery, settings: Settings, owner: str, request: dict, queue: str,
                 **links: Any) -> dict | None:
    """Queue a child job of ``owner`` running the normalised ``request``; None, having created
    nothing, when the owner already has TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER queued or running jobs."""
    job, _ = store.create(request, queue, owner=owner, **links)
    return _within_cap(store, celery, job, settings.quotas.max_active_jobs_per_owner)


def _within_cap(store: JobStore, celery: Celery, job: dict, cap: int) -> dict | None:
    """Counted after the insert, as ``submit`` does, so that two creators racing for the last
    slot cannot both take it."""
    if store.count_active(job["owner"]) > cap:
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
