"""Celery tasks: thin. The message carries the job id only."""

from __future__ import annotations

from core.queueing import TRAIN_TASK, publish_job
from workers.celery_app import app


@app.task(name=TRAIN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def train_job(self, job_id: str) -> None:
    from workers.runner import after_job, execute_job

    queue = execute_job(job_id, worker=self.request.hostname or "worker")
    if queue is not None:  # the worker is shutting down: hand the job to the next one
        publish_job(self.app, job_id, queue, returning=True)
        return
    after_job(job_id, self.app)
