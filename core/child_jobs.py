"""Starting a job on behalf of a parent (a verified remedy's attempt), from the API or a worker.

Torch-free and Flask-free: the API starts a remedy's first children in its POST, the worker's
advancer the next ones when a child ends. A child is a normal job of its parent's owner, on its
parent's queue, counted in the owner's active-jobs quota; when that quota is full the child is
not made (the parent waits and its next advance tries again) instead of failing.
"""

from __future__ import annotations

import logging

from celery import Celery

from core.jobstore import JobStore
from core.queueing import publish_job

log = logging.getLogger("trainrx.children")


def start_child(store: JobStore, celery: Celery, request: dict, *, parent: dict, key: str, max_active: int,
                remedy_id: str | None = None) -> dict | None:
    """The child job for ``key`` (an idempotency key naming the parent's slot, so that two advancers
    racing for the same slot make one job), queued and published; None when the owner's quota of
    active jobs is full. Counted after the insert, as the API's submit does, so that two children
    racing for the last slot cannot both take it."""
    owner = parent["owner"]
    if store.count_active(owner) >= max_active:
        return None
    job, created = store.create(request, parent["queue"], owner=owner, idempotency_key=key, parent_id=parent["id"],
                                remedy_id=remedy_id)
    if not created:
        return job  # another advancer made it (and published it, or the recovery sweep will)
    if store.count_active(owner) > max_active:
        store.discard(job["id"])
        return None
    try:
        publish_job(celery, job["id"], job["queue"], retry=False)
    except Exception:  # the job is queued in the database: the recovery sweep publishes it
        log.warning("could not publish child job %s now; the recovery sweep will", job["id"], exc_info=True)
    return job
