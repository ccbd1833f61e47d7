"""Runs one job: loads its row, trains, writes progress and results back.

Results go to the job store and the artifact directory, never to Celery's
result backend.
"""

from __future__ import annotations

import logging
import os
import time
from functools import lru_cache

import torch

from core import logging_setup, stop_reasons
from core.artifacts import WEIGHTS_FILE, WEIGHTS_KEY, ArtifactStore
from core.db import make_engine
from core.events import JobEvents
from core.job_runs import finish_durably
from core.jobstore import CANCELLED, FAILED, SUCCEEDED, JobStore, Superseded
from core.log_redaction import describe_exception, worker_label
from core.migrate import require_current
from core.model_exports import MODEL_PENDING
from core.settings import Settings
from core.storage import open_storage
from core.uploads import UploadMissing
from workers.dataset_cache import DatasetCache, cache_from_env
from workers.engine import checkpoint, loop
from workers.engine.config import JobConfig
from workers.engine.data import prepare
from workers import metrics, parents
from trainrx.network import weights_bytes
from workers.job_hooks import JobHooks

log = logging.getLogger("trainrx.worker")


@lru_cache(maxsize=1)
def datasets() -> DatasetCache:
    """This process's datasets, loaded once (workers/dataset_cache.py)."""
    return cache_from_env()


def warm_up() -> None:
    """Pay once per process, at worker start, what the first job would pay: torch's lazy import of
    its compiler stack (``torch._dynamo``, seconds), which the first optimizer (and the first
    export) triggers, and scikit-learn's, which the built-in datasets' loaders import."""
    import sklearn.datasets  # noqa: F401  (core/datasets.py imports it inside its loaders)

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


@lru_cache(maxsize=1)
def _context() -> tuple[Settings, JobStore, ArtifactStore]:
    settings = Settings.from_env()
    threads = os.environ.get("TRAINRX_TORCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    engine = make_engine(settings.database_url)
    require_current(engine)
    return settings, JobStore(engine), ArtifactStore(open_storage(settings, engine))


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


def after_job(job_id: str, celery) -> None:
    """The job ended on this worker: move on its parent (a sweep, a remedy), if it has one."""
    settings, store, _ = _context()
    parents.job_ended(settings, store, celery, job_id)


def execute_job(job_id: str, worker: str) -> str | None:
    """Train one job. Returns the queue to publish the job to again when the
    worker is shutting down mid-run, else None."""
    settings, store, artifacts = _context()
    job = store.start(job_id, worker)
    if job is None:
        log.info("job %s is not queued any more (running elsewhere, cancelled or finished); skipping", job_id)
        return None
    logging_setup.bind_job(job_id, job["owner"])  # json logs name the job's owner too
    metrics.job_started(settings.redis_url, job)
    began = time.monotonic()  # setup (loading, splitting, scaling) counts against max_runtime_s too
    hooks = JobHooks(store, artifacts, job, settings)
    hooks.events = JobEvents.started(settings.redis_url, job)
    try:
        config = hooks.config = JobConfig.from_request(job["request"])  # once: all after reads attributes
        with hooks:
            return _run(job, config, worker, hooks, settings, store, artifacts, began)
    except Superseded as exc:
        log.warning("job %s: run %d was superseded (its worker was presumed lost); this run stops and "
                    "writes nothing more (%s)", job_id, job["run"], exc, exc_info=True)
    except UploadMissing as exc:
        _fail(hooks, store, job, "dataset_unavailable", str(exc))
    except DeviceUnavailable as exc:
        _fail(hooks, store, job, "device_unavailable", str(exc))
    except Exception as exc:  # a crash must never leave the job running
        log.exception("job %s failed", job_id)  # the traceback is for the operator only
        _fail(hooks, store, job, "internal_error", describe_exception(exc), log_prefix="the job failed: ")
    finally:
        hooks.events.settled(store)
        metrics.run_settled(settings.redis_url, store, job)
    return None


def _run(job: dict, config: JobConfig, worker: str, hooks: JobHooks, settings: Settings, store: JobStore,
         artifacts: ArtifactStore, began: float) -> str | None:
    job_id, run = job["id"], int(job["run"])
    device = resolve_device(config.device)
    hooks.log(f"worker {worker_label(worker)} starts the job on {device}"
              + (f" (attempt {job['attempts'] + 1}: a worker was lost before)" if job["attempts"] else ""))
    source = datasets().open(config.request["dataset"], settings, store.engine, owner=job["owner"])
    data = prepare(source.arrays, config.dataset, source.classes, device)
    data_info = {**source.info, "device": str(device), **data.info}
    store.set_data_info(job_id, run, data_info)
    hooks.data_info = data_info
    hooks.log(f"dataset {source.label}: {data.info['train_samples']} training, "
              f"{data.info['validation_samples']} validation, {data.info['test_samples']} test samples")
    setup_s = time.monotonic() - began
    # max_runtime_s counts every run's time: what earlier runs used is taken off this one's budget.
    deadline = began + config.max_runtime_s - float(job["runtime_used_s"] or 0.0)
    result = _train(job, config, hooks, store, data, deadline)
    if result.stop_reason == stop_reasons.SHUTDOWN:
        hooks.log("the worker is shutting down; the job goes back to the queue")
        store.hand_back(job_id, run)
        return job["queue"]
    saved = {}
    if result.rows:
        if not store.heartbeat(job_id, run).current:  # never overwrite the files of a run that replaced this one
            raise Superseded(f"job {job_id}: run {run} was superseded")
        artifacts.write_bytes(job_id, WEIGHTS_FILE, weights_bytes(
            result.model, config.to_dict(), data.info["preprocessing"], data.features, data.classes, config.task,
            config.dataset.input_shape))
        saved[WEIGHTS_KEY] = WEIGHTS_FILE
        # The .pt2 and ONNX exports are not part of the job: they run after it, as a task of their own
        # (workers/export_task.py, published by workers/tasks.py once this run's final write landed).
    probes = result.probes
    diagnosis = hooks.diagnose(result.rows, result.summary, result.stop_reason,
                               steps=probes.steps if probes else None, initial=probes.initial if probes else None)
    status, error = SUCCEEDED, None
    if result.stop_reason == stop_reasons.CANCELLED:
        status = CANCELLED
    elif result.stop_reason == stop_reasons.TIME_LIMIT:
        status, error = FAILED, {"type": "time_limit",
                                 "message": f"The job ran past max_runtime_s={config.max_runtime_s} (counting "
                                            "every attempt); it stopped and kept what it had learned."}
    hooks.log(f"job {status}")  # before the final write: once it lands, this run can write no more
    finish_durably(store, job_id, run, status, summary=result.summary, error=error, diagnosis=diagnosis,
                   artifacts=saved, setup_s=setup_s, train_s=result.train_s,
                   model_status=MODEL_PENDING if saved else None)
    hooks.drop_checkpoint()
    return None


def _train(job: dict, config: JobConfig, hooks: JobHooks, store: JobStore, data, deadline: float) -> loop.RunResult:
    """Train from the last checkpoint when there is a usable one, else from the start."""
    job_id, run = job["id"], int(job["run"])
    saved = hooks.saved_checkpoint()
    if saved is not None:
        epoch, blob = saved
        store.rewind(job_id, run, epoch)
        hooks.resumed(store.epochs(job_id))
        hooks.log(f"resuming from the checkpoint after epoch {epoch}: epochs {epoch + 1} and on are trained "
                  "again")
        try:
            return loop.run(config, data, hooks, deadline=deadline, resume=blob)
        except checkpoint.CheckpointError as exc:
            hooks.log(f"the checkpoint after epoch {epoch} cannot be used ({exc}); training from the start")
    store.rewind(job_id, run, 0)
    hooks.resumed([])
    return loop.run(config, data, hooks, deadline=deadline)


def _fail(hooks: JobHooks, store: JobStore, job: dict, kind: str, message: str, log_prefix: str = "") -> None:
    hooks.log(log_prefix + message)
    try:
        finish_durably(store, job["id"], int(job["run"]), FAILED, error={"type": kind, "message": message})
    except Superseded:
        log.warning("job %s: run %d was superseded before it could record its failure", job["id"], job["run"])
