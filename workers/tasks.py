"""Celery tasks: thin. The message carries the job id only."""

from __future__ import annotations

from core.queueing import EXPORT_TASK, TRAIN_TASK, publish_job
from workers.celery_app import app


@app.task(name=TRAIN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def train_job(self, job_id: str) -> None:
    from workers.export_task import publish_pending_export
    from workers.runner import after_job, execute_job

    queue = execute_job(job_id, worker=self.request.hostname or "worker")
    if queue is not None:  # the worker is shutting down: hand the job to the next one
        publish_job(self.app, job_id, queue, returning=True)
        return
    publish_pending_export(job_id, self.app)  # the job is done; its .pt2 and ONNX follow as their own task
    after_job(job_id, self.app)


@app.task(name=EXPORT_TASK, acks_late=True, reject_on_worker_lost=True)
def export_model(job_id: str) -> None:
    from workers.export_task import export_job

    export_job(job_id)
