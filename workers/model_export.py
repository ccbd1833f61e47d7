"""At the end of a job, next to its weights: the exported model (.pt2) and its ONNX twin.

An export that fails does not fail the job: the training result stands, the
job's log says what went wrong, and GET /model answers 409 with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import torch

from core.artifacts import (MODEL_ERROR_KEY, MODEL_FILE, MODEL_KEY, ONNX_ERROR_KEY, ONNX_FILE, ONNX_KEY,
                            LocalArtifactStore)
from core.log_redaction import describe_exception
from workers.engine.export import served_model, to_onnx, to_pt2

operator_log = logging.getLogger("trainrx.worker")


class ExportTimedOut(Exception):
    """An export did not finish within TRAINRX_EXPORT_TIMEOUT_S."""


def _within(deadline: float, timeout_s: float, export: Callable[..., Any], *args: Any) -> Any:
    """Run ``export`` in a thread and wait for it until ``deadline`` (time.monotonic).

    A Python thread cannot be stopped: an export that times out is abandoned, runs to its end in
    the background and its result is dropped; the job goes on and finishes at once. The thread is
    not a daemon: torch aborts the process if the interpreter exits while it is inside an export,
    so the exit waits for it instead."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ExportTimedOut(f"no time left of the {timeout_s:g} s export limit (TRAINRX_EXPORT_TIMEOUT_S)")
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = export(*args)
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"export-{export.__name__}", daemon=False)
    thread.start()
    thread.join(remaining)
    if thread.is_alive():
        raise ExportTimedOut(f"did not finish within the {timeout_s:g} s export limit (TRAINRX_EXPORT_TIMEOUT_S)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def save_exports(artifacts: LocalArtifactStore, job_id: str, network: torch.nn.Module, preprocessing: dict,
                 features: int, log: Callable[[str], None], *, timeout_s: float, task: str = "classification") -> dict:
    """Write model.pt2 and model.onnx; returns their entries for the job's ``artifacts``.

    Both exports together get ``timeout_s``; one that runs out is recorded like a failed export."""
    saved: dict = {}
    deadline = time.monotonic() + timeout_s
    try:
        model = served_model(network, preprocessing, features, task)
    except Exception as exc:
        operator_log.exception("job %s: the input scaling for the exports could not be built", job_id)
        log(f"model export skipped: the input scaling could not be built: {describe_exception(exc)}")
        return {MODEL_ERROR_KEY: describe_exception(exc), ONNX_ERROR_KEY: "no model to convert"}
    began, abandoned = time.monotonic(), False
    try:
        data = _within(deadline, timeout_s, to_pt2, model, features)
        artifacts.write_bytes(job_id, MODEL_FILE, data)
        saved[MODEL_KEY] = {"file": MODEL_FILE, "format": "torch.export", "torch_version": torch.__version__,
                          "bytes": len(data), "export_s": round(time.monotonic() - began, 3)}
        log(f"exported the model with torch.export ({len(data):,} bytes, {time.monotonic() - began:.2f} s)")
    except ExportTimedOut as exc:
        log(f"warning: torch.export {exc}; no .pt2 for this job")
        saved[MODEL_ERROR_KEY] = f"{type(exc).__name__}: torch.export {exc}"
        abandoned = True
    except Exception as exc:
        operator_log.exception("job %s: torch.export failed", job_id)
        log(f"warning: torch.export failed; no .pt2 for this job: {describe_exception(exc)}")
        saved[MODEL_ERROR_KEY] = describe_exception(exc)
    began = time.monotonic()
    try:
        if abandoned:
            # The abandoned export may still be working on the same module; do not start another on it.
            raise ExportTimedOut(f"was not started: the .pt2 export used up the {timeout_s:g} s export limit "
                                 "(TRAINRX_EXPORT_TIMEOUT_S)")
        data, opset = _within(deadline, timeout_s, to_onnx, model, features)
        artifacts.write_bytes(job_id, ONNX_FILE, data)
        saved[ONNX_KEY] = {"file": ONNX_FILE, "opset": opset, "bytes": len(data),
                         "export_s": round(time.monotonic() - began, 3)}
        log(f"exported the model to ONNX (opset {opset}, {len(data):,} bytes, {time.monotonic() - began:.2f} s)")
    except ExportTimedOut as exc:
        log(f"warning: the ONNX export {exc}; no .onnx for this job")
        saved[ONNX_ERROR_KEY] = f"{type(exc).__name__}: the ONNX export {exc}"
    except Exception as exc:
        operator_log.exception("job %s: the ONNX export failed", job_id)
        log(f"warning: the ONNX export failed; no .onnx for this job: {describe_exception(exc)}")
        saved[ONNX_ERROR_KEY] = describe_exception(exc)
    return saved
