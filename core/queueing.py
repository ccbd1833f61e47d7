"""The Celery configuration both sides share: the API publishes job ids with it,
the workers consume them. No task code lives here, so the API never imports
the workers (or torch)."""

from __future__ import annotations

from celery import Celery

from core.redis_urls import celery_broker_url
from core.settings import Settings

TRAIN_TASK = "trainrx.train_job"
EXPORT_TASK = "trainrx.export_model"  # a finished job's .pt2 and ONNX, after the job (workers/model_export.py)
WORKER_KEY_PREFIX = "trainrx:workers:"
CPU_QUEUE, GPU_QUEUE = "cpu", "gpu"
QUEUES = (CPU_QUEUE, GPU_QUEUE)


# Kombu's Redis transport keeps one list per priority step and always takes from the
# lowest step first. New jobs are published at NEW_JOB_PRIORITY; a job that goes back to
# the queue (its worker was lost, or shut down mid-run) at RETURNING_PRIORITY, so that it
# resumes before the backlog instead of behind it.
RETURNING_PRIORITY, NEW_JOB_PRIORITY = 0, 3


def publish_job(celery: Celery, job_id: str, queue: str, *, returning: bool = False, retry: bool = True) -> None:
    """Publish a job's id on its queue (the message carries nothing else)."""
    celery.send_task(TRAIN_TASK, args=[job_id], queue=queue, retry=retry,
                     priority=RETURNING_PRIORITY if returning else NEW_JOB_PRIORITY)


def publish_export(celery: Celery, job_id: str, queue: str, *, retry: bool = True) -> None:
    """Publish a finished job's export (its id only), ahead of the new jobs: someone may be waiting
    for the model, and the export is short."""
    celery.send_task(EXPORT_TASK, args=[job_id], queue=queue, retry=retry, priority=RETURNING_PRIORITY)


def export_queue(settings: Settings, job_queue: str) -> str:
    """TRAINRX_EXPORT_QUEUE when set (workers kept for exports), else the job's own queue."""
    return settings.export_queue or job_queue


def queue_for(device: str, default_queue: str) -> str:
    """``cuda`` jobs wait for a GPU worker; ``auto`` and ``cpu`` go to the operator's default queue."""
    return GPU_QUEUE if device == "cuda" else default_queue


def make_celery(settings: Settings) -> Celery:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: start the stack with `make run`, or point REDIS_URL at a Redis")
    app = Celery("trainrx", set_as_current=False)
    # A message must not be redelivered while its job legitimately runs: the
    # visibility timeout stays well above the longest allowed run.
    visibility = 2 * settings.limits.max_runtime_s + 600
    app.conf.update(
        broker_url=celery_broker_url(settings.redis_url),
        broker_transport_options={"visibility_timeout": visibility},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.default_queue,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
