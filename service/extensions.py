"""The API's connections to its parts, built once per app and kept on ``app.extensions``."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app

from core.artifacts import ArtifactStore
from core.db import make_engine
from core.jobstore import JobStore
from core.migrate import require_current
from core.queueing import make_celery
from core.redis_urls import redis_py_url
from core.settings import Settings
from core.storage import Storage, open_storage

# A request waits at most this long for another writer's database lock, then answers
# 503 with Retry-After (service/errors.py). SQLite waits inside C, freezing the whole
# gevent process meanwhile; a long wait would also run into gunicorn's 30 s worker timeout.
API_DB_BUSY_TIMEOUT_S = 2.0


@dataclass
class Parts:
    settings: Settings
    store: JobStore
    storage: Storage  # files: uploads, and the artifacts below
    artifacts: ArtifactStore
    celery: Celery
    redis: redis.Redis

    @classmethod
    def connect(cls, settings: Settings) -> "Parts":
        engine = make_engine(settings.database_url, busy_timeout_s=API_DB_BUSY_TIMEOUT_S)
        require_current(engine)  # an unmigrated database stops the API here, saying what to run
        storage = open_storage(settings, engine)
        return cls(settings=settings, store=JobStore(engine), storage=storage, artifacts=ArtifactStore(storage),
                   celery=make_celery(settings),
                   redis=redis.Redis.from_url(redis_py_url(settings.redis_url), socket_timeout=2,
                                              socket_connect_timeout=2))


def parts() -> Parts:
    return current_app.extensions["trainrx"]
