"""The worker's side of verified remedies (core/remedies.py), registered in workers/parents.py:
when a child ends, its worker judges it and starts the next attempt; when a job that asked for
``auto_remedy`` ends unhealthy, its worker opens the remedy; the periodic recovery sweep moves on
every running remedy (a crash, or a child cancelled through the API while queued)."""

from __future__ import annotations

from functools import partial

from celery import Celery

from core import remedies
from core.events import EventPublisher
from core.jobstore import JobStore
from core.remedy_store import RemedyStore
from core.settings import Settings
from core.storage import open_storage
from core.uploads import UploadStore


def remedy_context(settings: Settings, store: JobStore, celery: Celery) -> remedies.RemedyContext:
    uploads = UploadStore(store.engine, open_storage(settings, store.engine))
    return remedies.RemedyContext(
        store=store, remedies=RemedyStore(store.engine), celery=celery, limits=settings.limits,
        max_active_jobs=settings.quotas.max_active_jobs_per_owner,
        default_parallel=settings.quotas.max_remedy_parallel,
        resolver_for=lambda owner: partial(uploads.shape, owner=owner),
        publish_status=EventPublisher.for_url(settings.redis_url).status)


class RemedyAdvancer:
    name = "remedies"

    def job_ended(self, settings: Settings, store: JobStore, celery: Celery, job: dict) -> None:
        if job.get("remedy_id") or job.get("auto_remedy_pending"):  # most jobs have nothing to move on
            remedies.job_ended(remedy_context(settings, store, celery), job)

    def advance_all(self, settings: Settings, store: JobStore, celery: Celery) -> int:
        return remedies.advance_all(remedy_context(settings, store, celery))
