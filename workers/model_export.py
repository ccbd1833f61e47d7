"""At the end of a job, next to its weights: the exported model (.pt2) and its ONNX twin.

An export that fails does not fail the job: the training result stands, the
job's log says what went wrong, and GET /model answers 409 with the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import torch

from core.artifacts import LocalArtifactStore
from core.log_redaction import describe_exception
from workers.engine.export import served_model, to_onnx, to_pt2

operator_log = logging.getLogger("trainrx.worker")
MODEL_FILE = "model.pt2"
ONNX_FILE = "model.onnx"


def save_exports(artifacts: LocalArtifactStore, job_id: str, network: torch.nn.Module, preprocessing: dict,
                 features: int, log: Callable[[str], None]) -> dict:
    """Write model.pt2 and model.onnx; returns their entries for the job's ``artifacts``."""
    saved: dict = {}
    try:
        model = served_model(network, preprocessing, features)
    except Exception as exc:
        operator_log.exception("job %s: the input scaling for the exports could not be built", job_id)
        log(f"model export skipped: the input scaling could not be built: {describe_exception(exc)}")
        return {"model_error": describe_exception(exc), "onnx_error": "no model to convert"}
    began = time.monotonic()
    try:
        data = to_pt2(model, features)
        artifacts.write_bytes(job_id, MODEL_FILE, data)
        saved["model"] = {"file": MODEL_FILE, "format": "torch.export", "torch_version": torch.__version__,
                          "bytes": len(data), "export_s": round(time.monotonic() - began, 3)}
        log(f"exported the model with torch.export ({len(data):,} bytes, {time.monotonic() - began:.2f} s)")
    except Exception as exc:
        operator_log.exception("job %s: torch.export failed", job_id)
        log(f"warning: torch.export failed; no .pt2 for this job: {describe_exception(exc)}")
        saved["model_error"] = describe_exception(exc)
    began = time.monotonic()
    try:
        data, opset = to_onnx(model, features)
        artifacts.write_bytes(job_id, ONNX_FILE, data)
        saved["onnx"] = {"file": ONNX_FILE, "opset": opset, "bytes": len(data),
                         "export_s": round(time.monotonic() - began, 3)}
        log(f"exported the model to ONNX (opset {opset}, {len(data):,} bytes, {time.monotonic() - began:.2f} s)")
    except Exception as exc:
        operator_log.exception("job %s: the ONNX export failed", job_id)
        log(f"warning: the ONNX export failed; no .onnx for this job: {describe_exception(exc)}")
        saved["onnx_error"] = describe_exception(exc)
    return saved
