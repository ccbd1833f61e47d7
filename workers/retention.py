"""The periodic retention sweep (``TRAINRX_RETENTION_DAYS``), run inside the workers.

No extra process: ``make run`` starts one worker and no Celery beat, and a
deployment scales workers out. Every worker runs a daemon thread; each
interval (``TRAINRX_RETENTION_INTERVAL_S``, an hour) the worker that first
takes a Redis lock that lives for one interval sweeps, so the cluster sweeps
about once per interval however many workers it has. With the setting off
(the default) no thread starts.
"""

from __future__ import annotations

import logging
import threading

import redis

from core.artifacts import ArtifactStore
from core.db import make_engine
from core.jobstore import JobStore
from core.redis_urls import redis_py_url
from core.retention import sweep
from core.settings import Settings
from core.storage import open_storage
from core.uploads import UploadStore

log = logging.getLogger("trainrx.retention")
LOCK_KEY = "trainrx:retention:lock"


def start_retention_sweeper(settings: Settings, stop: threading.Event, hostname: str) -> threading.Thread | None:
    if not settings.retention_days:
        return None
    thread = threading.Thread(target=_sweep_periodically, args=(settings, stop, hostname),
                              name="trainrx-retention", daemon=True)
    thread.start()
    log.info("retention: finished jobs and unused uploads are deleted after %d days (checked every %d s)",
             settings.retention_days, settings.retention_interval_s)
    return thread


def _sweep_periodically(settings: Settings, stop: threading.Event, hostname: str) -> None:
    client = redis.Redis.from_url(redis_py_url(settings.redis_url))
    engine = make_engine(settings.database_url)
    store = JobStore(engine)
    files = open_storage(settings, engine)
    uploads, artifacts = UploadStore(engine, files), ArtifactStore(files)
    while not stop.is_set():
        try:
            if client.set(LOCK_KEY, hostname, nx=True, ex=settings.retention_interval_s):
                sweep(store, uploads, artifacts, settings.retention_days)
        except Exception:  # the database or Redis may blip; the next round tries again
            log.exception("retention sweep failed")
        stop.wait(settings.retention_interval_s)
    engine.dispose()
