"""What a job says about its exported model: whether the export is done, the torch version it
needs, sizes, and why an export is missing."""

from __future__ import annotations

from core.artifacts import MODEL_ERROR_KEY, MODEL_KEY, ONNX_ERROR_KEY, ONNX_KEY, WEIGHTS_KEY
from core.model_exports import MODEL_FAILED, MODEL_READY


def model_status(job: dict) -> str | None:
    """``pending``, ``ready`` or ``failed``; None when the job left no weights. A job that finished
    before exports ran apart has no status but its artifacts: it reads as ready."""
    if job.get("model_status"):
        return job["model_status"]
    return MODEL_READY if (job.get("artifacts") or {}).get(WEIGHTS_KEY) else None


def model_metadata(job: dict) -> dict | None:
    """None until the job has weights; the exports follow the job as a task of their own."""
    status = model_status(job)
    if status is None:
        return None
    artifacts = job.get("artifacts") or {}
    pt2, onnx = artifacts.get(MODEL_KEY), artifacts.get(ONNX_KEY)
    errors = {kind: artifacts[key] for kind, key in (("pt2", MODEL_ERROR_KEY), ("onnx", ONNX_ERROR_KEY))
              if key in artifacts}
    failed = {"error": job.get("model_error") or errors.get("pt2") or "the export failed"} \
        if status == MODEL_FAILED else {}
    return {
        "status": status,
        "format": "torch.export",
        "torch_version": pt2.get("torch_version") if pt2 else None,
        "bytes": pt2.get("bytes") if pt2 else None,
        "onnx": {"opset": onnx.get("opset"), "bytes": onnx.get("bytes")} if onnx else None,
        **failed,
        **({"errors": errors} if errors else {}),
    }
