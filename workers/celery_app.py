"""The worker's Celery app: ``celery -A workers.celery_app worker -Q cpu``.

Workers announce themselves in Redis (a key with a short TTL, refreshed by a
thread) so that ``/healthz`` can count live workers without a broadcast.
"""

from __future__ import annotations

import json
import logging
import socket
import threading

import redis
from celery.signals import setup_logging, task_postrun, task_prerun, worker_init, worker_ready, worker_shutting_down

from core import logging_setup
from core.cluster_metrics import DRAINING_PREFIX
from core.db import make_engine
from core.migrate import SchemaNotCurrent, require_current
from core.queueing import WORKER_KEY_PREFIX, make_celery
from core.redis_urls import redis_py_url
from core.settings import Settings
from workers.recovery import start_recovery_sweeper
from workers.retention import start_retention_sweeper

settings = Settings.from_env()
app = make_celery(settings)
app.conf.imports = ("workers.tasks",)

shutting_down = threading.Event()
log = logging.getLogger("trainrx.worker")
_PRESENCE_TTL_S, _PRESENCE_EVERY_S = 30, 10


def _announce(hostname: str) -> None:
    client = redis.Redis.from_url(redis_py_url(settings.redis_url))
    key = f"{WORKER_KEY_PREFIX}{hostname}"
    while not shutting_down.is_set():
        try:
            client.set(key, socket.gethostname(), ex=_PRESENCE_TTL_S)
        except redis.RedisError:
            pass
        shutting_down.wait(_PRESENCE_EVERY_S)
    try:
        client.delete(key)
    except redis.RedisError:
        pass


@worker_init.connect
def _check_schema(**kwargs) -> None:
    """Refuse to start on a database that is not migrated (SystemExit passes Celery's signal guard)."""
    engine = make_engine(settings.database_url)
    try:
        require_current(engine)
    except SchemaNotCurrent as exc:
        raise SystemExit(f"trainrx worker: {exc}") from None
    finally:
        engine.dispose()


@worker_init.connect
def _import_the_engine(**kwargs) -> None:
    """torch and the engine are imported once per worker process, before it takes a job, so that
    no job (the first included) pays for the import (tasks import them lazily: workers/tasks.py)."""
    import workers.export_task  # noqa: F401  (and through it workers.runner, the engine, torch)
    from workers.runner import warm_up

    warm_up()


if logging_setup.log_format() == logging_setup.JSON:
    @setup_logging.connect
    def _json_logs(loglevel=None, **kwargs) -> None:
        """Celery's own lines and ours, one JSON object each (connecting this replaces Celery's set-up)."""
        logging_setup.configure("worker", loglevel or logging.INFO)


@task_prerun.connect
def _bind_job(args=None, **kwargs) -> None:
    logging_setup.bind_job(str(args[0]) if args else None)  # the runner adds the owner once the job starts


@task_postrun.connect
def _unbind_job(**kwargs) -> None:
    logging_setup.unbind_job()


def _stay_drained(consumer, hostname: str) -> None:
    """A worker drained before it (re)started takes no job either (workers/drain.py)."""
    try:
        raw = redis.Redis.from_url(redis_py_url(settings.redis_url)).get(f"{DRAINING_PREFIX}{hostname}")
    except redis.RedisError:
        return
    if raw is None:
        return
    for queue in json.loads(raw).get("queues", []):
        consumer.cancel_task_queue(queue)
    log.warning("worker %s is drained: it takes no new job until `python -m workers.drain undrain`", hostname)


@worker_ready.connect
def _on_ready(sender=None, **kwargs) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    _stay_drained(sender, hostname)
    threading.Thread(target=_announce, args=(hostname,), name="trainrx-presence", daemon=True).start()
    start_retention_sweeper(settings, shutting_down, hostname)  # only when TRAINRX_RETENTION_DAYS is set
    start_recovery_sweeper(settings, app, shutting_down, hostname)  # reaps lost workers, re-publishes lost messages


@worker_shutting_down.connect
def _on_shutdown(**kwargs) -> None:
    # Running jobs see this at their next step and go back to the queue.
    shutting_down.set()
