"""Jobs that belong to a parent (a sweep's children, a verified remedy's attempts) move their
parent on: when a child ends, the worker that ran it calls ``job_ended``; the periodic recovery
sweep calls ``advance_all``, so a parent still advances after a crash, or after a child was
cancelled through the API while it was queued (no worker saw it end).

Each kind of parent registers one ``Advancer`` in ``ADVANCERS``. Both calls must be safe to
repeat and to race (two workers, a worker and the sweep): an advancer decides under a row lock
or a conditional update, never from a value it read earlier.
"""

from __future__ import annotations

import logging
from typing import Protocol

from celery import Celery

from core.jobstore import JobStore
from core.settings import Settings
from core.sweeps import SweepAdvancer

log = logging.getLogger("trainrx.parents")


class Advancer(Protocol):
    name: str

    def job_ended(self, settings: Settings, store: JobStore, celery: Celery, job: dict) -> None:
        """``job`` (the finished child's row) ended: move its parent on, if it has one of this kind."""

    def advance_all(self, settings: Settings, store: JobStore, celery: Celery) -> int:
        """Move on every unfinished parent of this kind that needs it; returns how many moved."""


ADVANCERS: list[Advancer] = [SweepAdvancer()]


def job_ended(settings: Settings, store: JobStore, celery: Celery, job_id: str) -> None:
    """Never raises: a parent that fails to advance here is advanced by the next sweep."""
    job = store.get(job_id, owner=None)
    if job is None:
        return
    for advancer in ADVANCERS:
        try:
            advancer.job_ended(settings, store, celery, job)
        except Exception:
            log.exception("%s: advancing the parent of job %s failed; the recovery sweep retries", advancer.name,
                          job_id)


def advance_all(settings: Settings, store: JobStore, celery: Celery) -> dict:
    moved = {}
    for advancer in ADVANCERS:
        try:
            moved[advancer.name] = advancer.advance_all(settings, store, celery)
        except Exception:
            log.exception("%s: the periodic advance failed; the next sweep retries", advancer.name)
    return moved
