"""Runs one job: loads its row, trains, writes progress and results back.

Results go to the job store and the artifact directory, never to Celery's
result backend.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import lru_cache, partial

import torch

from core import stop_reasons
from core.artifacts import WEIGHTS_FILE, WEIGHTS_KEY, LocalArtifactStore
from core.dataset_sources import open_dataset
from core.db import make_engine
from core.events import JobEvents
from core.jobstore import CANCELLED, FAILED, SUCCEEDED, JobStore
from core.migrate import require_current
from core.log_redaction import describe_exception, redact, worker_label
from core.settings import Settings
from core.uploads import UploadMissing, UploadStore
from workers.celery_app import shutting_down
from workers.diagnosis import diagnose
from workers.engine import loop
from workers.engine.data import prepare
from workers.engine.weights import weights_bytes
from workers.model_export import save_exports

log = logging.getLogger("trainrx.worker")
HEARTBEAT_EVERY_S = 2.0


@lru_cache(maxsize=1)
def _context() -> tuple[Settings, JobStore, LocalArtifactStore]:
    settings = Settings.from_env()
    threads = os.environ.get("TRAINRX_TORCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    engine = make_engine(settings.database_url)
    require_current(engine)
    return settings, JobStore(engine), LocalArtifactStore(settings.artifacts_dir)


class DeviceUnavailable(Exception):
    pass


def resolve_device(requested: str) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise DeviceUnavailable("The job asks for CUDA but this worker has no GPU.")
    return torch.device("cpu")


class JobHooks:
    """Connects the engine to the job store: progress, logs, cancel and shutdown."""

    def __init__(self, store: JobStore, job: dict, settings: Settings) -> None:
        self.store, self.job_id, self.request = store, job["id"], job["request"]
        # The diagnosis checks its suggested patches as the API will check the owner's resubmit.
        self.limits = settings.limits
        uploads = UploadStore(store.engine, settings.uploads_dir)
        self.resolver = lru_cache(maxsize=4)(partial(uploads.shape, owner=job["owner"]))
        self.rows: list[dict] = []
        self.data_info: dict | None = None
        self.events: JobEvents | None = None  # live events (core/events.py); set once the job runs
        self.cancelled = threading.Event()
        self._stop_beat = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name=f"heartbeat-{self.job_id}", daemon=True)

    def __enter__(self) -> "JobHooks":
        self._beat.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_beat.set()
        self._beat.join(timeout=5)

    def _heartbeat(self) -> None:
        while not self._stop_beat.wait(HEARTBEAT_EVERY_S):
            try:
                if self.store.heartbeat(self.job_id):
                    self.cancelled.set()
            except Exception:  # the database may blip; the next beat tries again
                log.exception("heartbeat for job %s failed", self.job_id)

    def stop_reason(self) -> str | None:
        if self.cancelled.is_set():
            return stop_reasons.CANCELLED
        if shutting_down.is_set():
            return stop_reasons.SHUTDOWN
        return None

    def on_epoch(self, row: dict, summary: dict, probes) -> None:
        self.rows.append(row)
        steps, initial = (probes.steps, probes.initial) if probes else (None, None)
        so_far = self.diagnose(self.rows, summary, None, steps=steps, initial=initial, final=False)
        self.store.record_epoch(self.job_id, row, summary, steps=steps,
                                initial_probes=initial if len(self.rows) == 1 else None, diagnosis=so_far)
        if self.events is not None:
            self.events.epoch(row)

    def diagnose(self, rows: list[dict], summary: dict | None, stop_reason: str | None, **kwargs) -> dict:
        return diagnose(self.request, rows, summary, stop_reason, self.data_info, limits=self.limits,
                        resolver=self.resolver, **kwargs)

    def log(self, line: str) -> None:
        """To the operator's log as is; to the job's own log (its user reads it) redacted."""
        log.info("job %s: %s", self.job_id, line)
        self.store.log(self.job_id, redact(line))


def execute_job(job_id: str, worker: str) -> str | None:
    """Train one job. Returns the queue to publish the job to again when the
    worker is shutting down mid-run, else None."""
    settings, store, artifacts = _context()
    job = store.start(job_id, worker)
    if job is None:
        log.info("job %s is not queued any more (cancelled or taken); skipping", job_id)
        return None
    request = job["request"]
    began = time.monotonic()  # setup (loading, splitting, scaling) counts against max_runtime_s too
    hooks = JobHooks(store, job, settings)
    hooks.events = JobEvents.started(settings.redis_url, job)
    try:
        with hooks:
            device = resolve_device(request["device"])
            hooks.log(f"worker {worker_label(worker)} starts the job on {device}")
            source = open_dataset(request["dataset"], settings, store.engine, owner=job["owner"])
            data = prepare(source.arrays, request["dataset"], source.classes, device)
            data_info = {**source.info, "device": str(device), **data.info}
            store.set_data_info(job_id, data_info)
            hooks.data_info = data_info
            hooks.log(f"dataset {source.label}: {data.info['train_samples']} training, "
                      f"{data.info['validation_samples']} validation, {data.info['test_samples']} test samples")
            setup_s = time.monotonic() - began
            result = loop.run(request, data, hooks, deadline=began + request["max_runtime_s"])
        if result.stop_reason == stop_reasons.SHUTDOWN:
            hooks.log("the worker is shutting down; the job goes back to the queue")
            return job["queue"] if store.requeue(job_id) else None
        saved = {}
        if result.rows:
            artifacts.write_bytes(job_id, WEIGHTS_FILE, weights_bytes(
                result.model, request, data.info["preprocessing"], data.features, data.classes))
            saved[WEIGHTS_KEY] = WEIGHTS_FILE
            # After training and outside max_runtime_s, under a limit of their own.
            saved.update(save_exports(artifacts, job_id, result.model, data.info["preprocessing"], data.features,
                                      hooks.log, timeout_s=settings.export_timeout_s))
        probes = result.probes
        diagnosis = hooks.diagnose(result.rows, result.summary, result.stop_reason,
                                   steps=probes.steps if probes else None,
                                   initial=probes.initial if probes else None)
        status, error = SUCCEEDED, None
        if result.stop_reason == stop_reasons.CANCELLED:
            status = CANCELLED
        elif result.stop_reason == stop_reasons.TIME_LIMIT:
            status, error = FAILED, {"type": "time_limit",
                                     "message": f"The job ran past max_runtime_s={request['max_runtime_s']}; "
                                                "it stopped and kept what it had learned."}
        store.finish(job_id, status, summary=result.summary, error=error, diagnosis=diagnosis,
                     artifacts=saved, setup_s=setup_s, train_s=result.train_s)
        hooks.log(f"job {status}")
    except UploadMissing as exc:
        hooks.log(str(exc))
        store.finish(job_id, FAILED, error={"type": "dataset_unavailable", "message": str(exc)})
    except DeviceUnavailable as exc:
        hooks.log(str(exc))
        store.finish(job_id, FAILED, error={"type": "device_unavailable", "message": str(exc)})
    except Exception as exc:  # a crash must never leave the job running
        log.exception("job %s failed", job_id)  # the traceback is for the operator only
        hooks.log(f"the job failed: {describe_exception(exc)}")
        store.finish(job_id, FAILED, error={"type": "internal_error", "message": describe_exception(exc)})
    finally:
        hooks.events.settled(store)
    return None
