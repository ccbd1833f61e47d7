"""What a job says about its exported model: the torch version it needs, sizes, and why an export is missing."""

from __future__ import annotations


def model_metadata(job: dict) -> dict | None:
    """None until the job has weights; the worker exports the model right after writing them."""
    artifacts = job.get("artifacts") or {}
    if not artifacts.get("weights"):
        return None
    pt2, onnx = artifacts.get("model"), artifacts.get("onnx")
    errors = {kind: artifacts[key] for kind, key in (("pt2", "model_error"), ("onnx", "onnx_error")) if key in artifacts}
    return {
        "format": "torch.export",
        "torch_version": pt2["torch_version"] if pt2 else None,
        "bytes": pt2["bytes"] if pt2 else None,
        "onnx": {"opset": onnx["opset"], "bytes": onnx["bytes"]} if onnx else None,
        **({"errors": errors} if errors else {}),
    }
