"""The job resource as a plain dict: exactly what ``JobSchema`` dumps, built without marshmallow.

``GET /v1/jobs/{id}`` is what every client polls. Dumping a row through JobSchema's
nested and derived fields cost about as much as reading the row, and its seven
``url_for`` calls as much again as the rest of the dump. ``JobSchema`` stays the
documented shape (openapi.yaml); tests/service/test_job_resource.py holds this
builder equal to ``JobSchema().dump(row)`` for every kind of row, and fails naming
any field added to the schema and not here.
"""

from __future__ import annotations

from datetime import datetime

from flask import url_for

from service.model_metadata import model_metadata

# Typed keys of the nested objects, as their schemas (service/schemas.py) declare them: a dump
# keeps only these keys, and casts each value (an int accuracy of 1 is shown as 1.0).
_SUMMARY = {"train_loss": float, "val_loss": float, "train_accuracy": float, "val_accuracy": float,
            "best_epoch": int, "epochs_run": int, "stopped_early": bool, "returned_epoch": int,
            "test_loss": float, "test_accuracy": float, "train_r2": float, "val_r2": float, "train_mae": float,
            "val_mae": float, "test_r2": float, "test_mae": float}
_TIMINGS = dict.fromkeys(("queued_s", "setup_s", "train_s", "total_s"), float)
_ERROR = {"type": str, "message": str}
_ONNX = {"opset": int, "bytes": int}


def _typed(value: dict | None, types: dict) -> dict | None:
    """A nested schema's dump: its declared keys that are present, cast (None stays None)."""
    if value is None:
        return None
    return {key: None if value[key] is None else cast(value[key]) for key, cast in types.items() if key in value}


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _model(row: dict) -> dict | None:
    model = model_metadata(row)
    if model is None:
        return None
    shown = {"status": str(model["status"])}
    if "error" in model:
        shown["error"] = str(model["error"])
    shown.update({"format": str(model["format"]),
             "torch_version": None if model["torch_version"] is None else str(model["torch_version"]),
             "bytes": None if model["bytes"] is None else int(model["bytes"]),
             "onnx": _typed(model["onnx"], _ONNX)})
    if "errors" in model:
        shown["errors"] = {str(k): None if v is None else str(v) for k, v in model["errors"].items()}
    return shown


def _links(row: dict) -> dict:
    job = url_for("jobs.Job", job_id=row["id"])  # one URL build: the others are its sub-resources
    links = {"self": job, "curves": f"{job}/curves", "diagnosis": f"{job}/diagnosis",
             "weights": f"{job}/weights", "logs": f"{job}/logs", "model": f"{job}/model",
             "model_onnx": f"{job}/model.onnx"}
    if row.get("parent_id"):
        links["parent"] = url_for("jobs.Job", job_id=row["parent_id"])
    if row.get("own_remedy_id"):
        links["remedies"] = f"{job}/remedies"
    if row.get("sweep_id"):
        links["sweep"] = url_for("sweeps.Sweep", sweep_id=row["sweep_id"])
    return links


def job_resource(row: dict) -> dict:
    """The job resource of a job store row (``JobStore.get``), as JobSchema dumps it."""
    return {
        "id": str(row["id"]),
        "owner": str(row["owner"]),
        "name": None if row["name"] is None else str(row["name"]),
        "status": str(row["status"]),
        "queue": str(row["queue"]),
        "request": dict(row["request"]),
        "created_at": _when(row["created_at"]),
        "started_at": _when(row["started_at"]),
        "finished_at": _when(row["finished_at"]),
        "attempts": int(row["attempts"]),
        "progress": {"epoch": int(row["progress_epoch"]), "epochs": row["request"]["epochs"]},
        "summary": _typed(row["summary"], _SUMMARY),
        "timings": _typed(row["timings"], _TIMINGS),
        "error": _typed(row["error"], _ERROR),
        "data": None if row["data_info"] is None else dict(row["data_info"]),
        "model": _model(row),
        "links": _links(row),
    }
