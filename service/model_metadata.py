"""What a job says about its exported model: the torch version it needs, sizes, and why an export is missing."""

from __future__ import annotations

from core.artifacts import MODEL_ERROR_KEY, MODEL_KEY, ONNX_ERROR_KEY, ONNX_KEY, WEIGHTS_KEY


def model_metadata(job: dict) -> dict | None:
    """None until the job has weights; the worker exports the model right after writing them."""
    artifacts = job.get("artifacts") or {}
    if not artifacts.get(WEIGHTS_KEY):
        return None
    pt2, onnx = artifacts.get(MODEL_KEY), artifacts.get(ONNX_KEY)
    errors = {kind: artifacts[key] for kind, key in (("pt2", MODEL_ERROR_KEY), ("onnx", ONNX_ERROR_KEY))
              if key in artifacts}
    return {
        "format": "torch.export",
        "torch_version": pt2["torch_version"] if pt2 else None,
        "bytes": pt2["bytes"] if pt2 else None,
        "onnx": {"opset": onnx["opset"], "bytes": onnx["bytes"]} if onnx else None,
        **({"errors": errors} if errors else {}),
    }
