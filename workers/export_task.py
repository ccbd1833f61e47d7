"""A finished job's exports (.pt2 and ONNX) as a task of their own, after the job.

The job is done once its weights, curves and diagnosis are written (workers/runner.py);
the worker then publishes ``trainrx.export_model`` (the job id only) and this task
rebuilds the network from the stored weights with ``trainrx.network``, exports it
(workers/model_export.py, under TRAINRX_EXPORT_TIMEOUT_S) and writes the files through
the same storage. ``jobs.model_status`` goes ``pending`` -> ``ready`` or ``failed``
(core/model_exports.py). A worker lost mid-export is covered by the recovery sweep.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

from core.artifacts import MODEL_ERROR_KEY, MODEL_KEY, ONNX_ERROR_KEY, ONNX_KEY, WEIGHTS_FILE
from core.job_status import utcnow
from core.log_redaction import describe_exception
from core.model_exports import MODEL_FAILED, MODEL_PENDING, MODEL_READY
from core.queueing import export_queue, publish_export
from core.settings import Settings
from trainrx.network import build_network, network_config, read_weights
from workers.model_export import save_exports
from workers.runner import _context

log = logging.getLogger("trainrx.worker")


def claim_grace_s(settings: Settings) -> float:
    """How long an export task may hold an export before it counts as lost: the export limit
    (an export that runs out of it still records its failure) and the heartbeat grace."""
    return settings.export_timeout_s + settings.heartbeat_grace_s


def publish_pending_export(job_id: str, celery: Celery) -> bool:
    """After the job's final write: publish its export when it left weights. A publish that
    fails (Redis away) is logged; the recovery sweep publishes it later."""
    settings, store, _ = _context()
    job = store.get(job_id, owner=None)
    if job is None or job.get("model_status") != MODEL_PENDING or job.get("model_claimed_at") is not None:
        return False
    try:
        publish_export(celery, job_id, export_queue(settings, job["queue"]))
    except Exception:
        log.exception("job %s: could not publish its export; the recovery sweep will", job_id)
        return False
    return True


def export_job(job_id: str) -> str | None:
    """Export a finished job's model; returns the model status it reached (None: nothing to do)."""
    settings, store, artifacts = _context()
    claim = store.claim_export(job_id, stale_before=utcnow() - timedelta(seconds=claim_grace_s(settings)))
    if claim is None:
        log.info("job %s: its export is not pending, or another task holds it; skipping", job_id)
        return None

    def job_log(line: str) -> None:
        store.log(job_id, line, run=None)

    try:
        data = artifacts.read_bytes(job_id, WEIGHTS_FILE)
        if data is None:
            raise FileNotFoundError("the job's weights are not in the storage")
        state, meta = read_weights(data)
        network = build_network(network_config(meta))
        network.load_state_dict(state, strict=True)
    except Exception as exc:
        log.exception("job %s: the weights for the export could not be loaded", job_id)
        reason = f"the weights could not be loaded: {describe_exception(exc)}"
        job_log(f"model export failed: {reason}")
        saved = {MODEL_ERROR_KEY: reason, ONNX_ERROR_KEY: "no model to convert"}
        store.finish_export(claim, MODEL_FAILED, saved=saved, error=reason)
        return MODEL_FAILED
    saved = save_exports(artifacts, job_id, network, meta["preprocessing"], meta["features"], job_log,
                         timeout_s=settings.export_timeout_s, task=meta["task"])
    if MODEL_KEY in saved or ONNX_KEY in saved:
        status, error = MODEL_READY, None
    else:
        status, error = MODEL_FAILED, saved.get(MODEL_ERROR_KEY) or "no export succeeded"
    if not store.finish_export(claim, status, saved=saved, error=error):
        if store.get(job_id, owner=None) is None:  # deleted while exporting: leave no files behind
            artifacts.delete_job(job_id)
        else:
            log.warning("job %s: export attempt %d was overtaken by a newer one; its result is dropped", job_id,
                        claim.attempt)
        return None
    return status
