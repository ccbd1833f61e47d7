"""More of /v1/jobs/{id}: its log and its exported model (.pt2 and ONNX).

These routes join the jobs blueprint, so the OpenAPI document keeps one
"jobs" section. The worker writes the files; the API only serves them from the storage
(core/storage.py) and never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from flask import Response, send_file
from flask.views import MethodView
from flask_smorest import abort

from core.artifacts import MODEL_FILE, MODEL_KEY, ONNX_FILE, ONNX_KEY, WEIGHTS_KEY
from core.jobstore import FINISHED
from core.model_exports import MODEL_FAILED, MODEL_PENDING
from service.extensions import parts
from service.jobs_api import blp, load_job
from service.model_metadata import model_status

TORCH_VERSION_HEADER = "X-Torch-Version"
EXPORT_RETRY_AFTER_S = 1  # an export takes about a second; the SDK waits this long between tries
_PENDING = ("The job has no exported model yet: not finished, no weights (409), or its export is still running "
            "(409 with `Retry-After`, `model.status` pending).")
_RETRY_AFTER = {"description": "While the export runs: seconds to wait before asking again.",
                "schema": {"type": "integer"}}


@blp.route("/<job_id>/logs")
class Logs(MethodView):
    @blp.response(200, {"type": "string"}, content_type="text/plain",
                  description="One line per entry, `<UTC timestamp> <text>`. Grows while the job runs. "
                              "Server paths and host names are left out; tracebacks stay in the operator's "
                              "log.")
    @blp.alt_response(404, description="No such job.")
    def get(self, job_id: str):
        """The job's own log: worker, device, dataset, each epoch's metrics, warnings, why a failure happened."""
        load_job(job_id)
        lines = [f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {line}\n" for at, line in parts().store.logs(job_id)]
        return Response("".join(lines), mimetype="text/plain")


def _model_file(job_id: str, key: str, file_name: str, what: str) -> tuple[dict, Path | BinaryIO]:
    """The job's artifact entry for an exported model and the file to send (core/storage.py); else
    409 while there is none yet (with ``Retry-After`` while the export runs), 410 when there will be none."""
    job = load_job(job_id)
    artifacts = job["artifacts"] or {}
    if job["status"] not in FINISHED or not artifacts.get(WEIGHTS_KEY):
        abort(409, message=f"The job has no {what} yet (status {job['status']}); it is exported when the "
                           "job ends with weights.")
    status = model_status(job)
    if status == MODEL_PENDING:
        abort(409, message=f"The job's {what} is being exported (model.status pending); retry in "
                           f"{EXPORT_RETRY_AFTER_S} s.", headers={"Retry-After": str(EXPORT_RETRY_AFTER_S)})
    entry = artifacts.get(key)
    stored = parts().artifacts.sendable(job_id, file_name) if entry else None
    if stored is None:
        reason = artifacts.get(f"{key}_error") or (job.get("model_error") if status == MODEL_FAILED else None)
        abort(410, message=f"The job has no {what}: " + (f"the export failed ({reason})." if reason else
                                                          "it finished before models were exported."))
    return entry, stored


@blp.route("/<job_id>/model")
class Model(MethodView):
    @blp.response(200, {"format": "binary", "type": "string"}, content_type="application/octet-stream",
                  description="A torch.export program (load with `torch.export.load`): eval mode, dynamic batch "
                              "dimension, the input scaling as its first step. Loading needs a compatible torch; "
                              "see docs/models.md.",
                  headers={TORCH_VERSION_HEADER: {"description": "The torch version that exported it.",
                                                  "schema": {"type": "string"}}})
    @blp.alt_response(409, description=_PENDING, headers={"Retry-After": _RETRY_AFTER})
    @blp.alt_response(410, description="The job has no exported model and will have none: the export failed (the "
                                       "message says why), or the job finished before models were exported.")
    def get(self, job_id: str):
        """Download the trained model as a self-contained torch.export program (.pt2)."""
        entry, stored = _model_file(job_id, MODEL_KEY, MODEL_FILE, "exported model")
        response = send_file(stored, mimetype="application/octet-stream", as_attachment=True,
                             download_name=f"{job_id}.pt2")
        response.headers[TORCH_VERSION_HEADER] = entry["torch_version"]
        return response


@blp.route("/<job_id>/model.onnx")
class ModelOnnx(MethodView):
    @blp.response(200, {"format": "binary", "type": "string"}, content_type="application/octet-stream",
                  description="The same model as ONNX (input `x` of shape [batch, features], output `logits`).")
    @blp.alt_response(409, description=_PENDING.replace("exported model", "ONNX model"),
                      headers={"Retry-After": _RETRY_AFTER})
    @blp.alt_response(410, description="The job has no ONNX model and will have none: the export failed (the "
                                       "message says why), or the job finished before models were exported.")
    def get(self, job_id: str):
        """Download the trained model as ONNX."""
        _, stored = _model_file(job_id, ONNX_KEY, ONNX_FILE, "ONNX model")
        return send_file(stored, mimetype="application/octet-stream", as_attachment=True,
                         download_name=f"{job_id}.onnx")
