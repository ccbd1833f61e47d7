"""/v1/jobs: submit, list, read, cancel; curves, diagnosis and weights of one job."""

from __future__ import annotations

from flask import jsonify, request, send_file, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest

from core.artifacts import WEIGHTS_FILE, WEIGHTS_KEY
from core.events import publish_status
from core.jobstore import FINISHED, IdempotencyConflict, InvalidCursor, UploadGone
from core.queueing import publish_job, queue_for
from core.retention import delete_finished_job
from core.spec import JobRequestSchema, merge_patch, normalise
from service.auth import current_principal, listed_owner
from service.datasets_api import uploads
from service.extensions import parts
from service.job_resource import job_resource
from service.quotas import too_many
from service.schemas import (CurvesArgsSchema, CurvesSchema, DiagnosisSchema, JobListArgsSchema, JobListSchema,
                             JobSchema, ResubmitSchema)

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Training jobs")

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_PARAMETER = {"in": "header", "name": IDEMPOTENCY_HEADER, "required": False,
                         "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                         "description": "Makes the POST safe to retry: the same key with the same body answers "
                                        "200 with the job the first POST made."}
ACTIVE_JOBS_RETRY_AFTER_S = 30  # a slot frees when one of the owner's jobs finishes: seconds to minutes


def load_job(job_id: str, *, resource_only: bool = False) -> dict:
    """The caller's job (any job, for admins), or 404: another owner's job does not exist for you.
    ``resource_only``: only what the job resource shows (JobStore.get)."""
    job = parts().store.get(job_id, owner=current_principal().scope, resource_only=resource_only)
    if job is None:
        abort(404, message=f"No job with id {job_id!r}.")
    return job


def upload_resolver():
    """The caller's uploads (any, for admins): another owner's upload id is unknown here."""
    store, scope = uploads(), current_principal().scope
    return lambda dataset_id: store.shape(dataset_id, owner=scope)


def validate(payload, message: str = "The request is invalid.") -> dict:
    """The normalised request, checked against the operator's limits and the uploads; else a 422."""
    try:
        return normalise(payload, limits=parts().settings.limits, resolver=upload_resolver())
    except ValidationError as exc:
        abort(422, message=message, errors=exc.messages)


def json_body():
    """The request's JSON (an empty body reads as {}); a body that does not parse is a 400."""
    if not request.get_data(cache=True):
        return {}
    try:
        return request.get_json()
    except BadRequest:
        abort(400, message="The body is not valid JSON.")


def submit(normalised: dict, *, idempotency_key: str | None = None, parent_id: str | None = None):
    """Store a queued job and publish its id; the shared path of POST /v1/jobs and resubmits."""
    p = parts()
    queue = queue_for(normalised["device"], p.settings.default_queue)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        abort(400, message=f"{IDEMPOTENCY_HEADER} must be 1 to 255 characters.")
    try:
        job, created = p.store.create(normalised, queue, owner=current_principal().owner,
                                      idempotency_key=idempotency_key, parent_id=parent_id)
    except IdempotencyConflict as exc:
        abort(409, message=str(exc))
    except UploadGone as exc:
        abort(422, message="The request is invalid.", errors={"dataset": {"id": [str(exc)]}})
    if created:
        _within_active_jobs_cap(job)
        try:
            publish_job(p.celery, job["id"], queue, retry=False)
        except Exception:
            p.store.discard(job["id"])
            abort(503, message="The job queue is unavailable; nothing was queued. Retry later.")
    headers = {"Location": url_for("jobs.Job", job_id=job["id"])}
    return job, (202 if created else 200), headers


def _within_active_jobs_cap(job: dict) -> None:
    """Counted after the insert, so that two submits racing for the last slot cannot both
    take it (both may be refused; a retry gets it); an idempotent replay creates nothing
    and is never refused."""
    p = parts()
    cap = p.settings.quotas.max_active_jobs_per_owner
    if p.store.count_active(job["owner"]) > cap:
        p.store.discard(job["id"])
        too_many(f"You have {cap} queued or running jobs, the most one owner may have "
                 f"(TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER); wait for one to finish or cancel one.",
                 ACTIVE_JOBS_RETRY_AFTER_S)


@blp.route("")
class Jobs(MethodView):
    # Validated in the view, with the limits and uploads in force; the schema documents the body.
    @blp.doc(requestBody={"required": True, "content": {"application/json": {"schema": JobRequestSchema}}},
             parameters=[IDEMPOTENCY_PARAMETER])
    @blp.alt_response(422, "UNPROCESSABLE_ENTITY")
    @blp.response(202, JobSchema, description="Accepted and queued.",
                  headers={"Location": {"description": "The job's URL", "schema": {"type": "string"}}})
    @blp.alt_response(200, schema=JobSchema, description="An earlier POST with the same Idempotency-Key and body.")
    @blp.alt_response(409, description="The Idempotency-Key was used with a different body.")
    @blp.alt_response(415, description="The body is not JSON.")
    @blp.alt_response(429, description="The owner has TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER queued or running jobs "
                                       "(or is over the rate limit); retry after `Retry-After` seconds.")
    def post(self):
        """Submit a training job.

        Send an `Idempotency-Key` header to make the POST safe to retry."""
        return submit(validate(json_body()), idempotency_key=request.headers.get(IDEMPOTENCY_HEADER))

    @blp.arguments(JobListArgsSchema, location="query")
    @blp.response(200, JobListSchema)
    def get(self, args: dict):
        """List jobs, newest first."""
        try:
            page = parts().store.list(owner=listed_owner(current_principal(), args.get("owner")),
                                      status=args.get("status"), limit=args["limit"], cursor=args.get("cursor"))
        except InvalidCursor as exc:
            abort(422, message="The request is invalid.", errors={"cursor": [str(exc)]})
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/<job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, description="No such job.")
    def get(self, job_id: str):
        """Read a job."""
        # What clients poll: built as a plain dict, not dumped by JobSchema (service/job_resource.py).
        return jsonify(job_resource(load_job(job_id, resource_only=True)))

    @blp.response(204, description="Deleted: the job's record, curves, log and files.")
    @blp.alt_response(404, description="No such job.")
    @blp.alt_response(409, description="The job is queued or running: cancel it first.")
    def delete(self, job_id: str):
        """Delete a finished job and everything it stored."""
        load_job(job_id)
        if not delete_finished_job(parts().store, parts().artifacts, job_id, owner=current_principal().scope):
            job = load_job(job_id)  # 404 when another request deleted it meanwhile
            abort(409, message=f"The job is {job['status']}; cancel it (POST /v1/jobs/{job_id}/cancel) and "
                               "delete it once it has finished.")
        return None


@blp.route("/<job_id>/cancel")
class Cancel(MethodView):
    @blp.response(202, JobSchema, description="A queued job is cancelled at once; a running one stops at its next "
                                              "step and keeps its partial curves.")
    @blp.alt_response(409, description="The job has already finished.")
    def post(self, job_id: str):
        """Cancel a job."""
        load_job(job_id)
        cancelled = parts().store.request_cancel(job_id, owner=current_principal().scope)
        job = load_job(job_id)  # 404 when a DELETE won the race
        if cancelled is None:
            abort(409, message=f"The job has already finished ({job['status']}).")
        publish_status(parts().redis, job)  # a queued job is cancelled here, not by a worker
        return job


def pivot_curves(rows: list[dict], task: str = "classification") -> dict:
    """Epoch rows -> one list per metric (per layer for per-layer metrics), all of equal length.
    A value an epoch did not record (a probe skipped after non-finite weights) is null. The task's
    metrics are always there (R² and MAE for regression, accuracies otherwise), empty before epoch 1."""
    curves: dict = {}
    for key in dict.fromkeys(k for row in rows for k in row):
        if any(isinstance(row.get(key), dict) for row in rows):
            layers = dict.fromkeys(name for row in rows for name in (row.get(key) or {}))
            curves[key] = {name: [(row.get(key) or {}).get(name) for row in rows] for name in layers}
        else:
            curves[key] = [row.get(key) for row in rows]
    metrics = ("train_r2", "val_r2", "train_mae", "val_mae") if task == "regression" else ("train_accuracy",
                                                                                           "val_accuracy")
    for key in ("epoch", "train_loss", "val_loss", "learning_rate", *metrics):
        curves.setdefault(key, [])
    curves.setdefault("grad_norm", {})
    return curves


@blp.route("/<job_id>/resubmit")
class Resubmit(MethodView):
    @blp.arguments(ResubmitSchema)
    @blp.doc(parameters=[IDEMPOTENCY_PARAMETER])
    @blp.response(202, JobSchema, description="A new job running the patched request; `links.parent` names "
                                              "this one.")
    @blp.alt_response(200, schema=JobSchema, description="An earlier resubmit with the same Idempotency-Key and "
                                                         "patch.")
    @blp.alt_response(409, description="The Idempotency-Key was used with a different request.")
    @blp.alt_response(422, description="The patched request is invalid; `errors` names its bad fields.")
    @blp.alt_response(429, description="The owner has TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER queued or running jobs "
                                       "(or is over the rate limit); retry after `Retry-After` seconds.")
    def post(self, args: dict, job_id: str):
        """Run the job again with a JSON merge patch (RFC 7396) applied to its normalised request.

        Every diagnosis suggestion carries such a patch."""
        parent = load_job(job_id)
        normalised = validate(merge_patch(parent["request"], args["patch"]), "The patched request is invalid.")
        return submit(normalised, idempotency_key=request.headers.get(IDEMPOTENCY_HEADER), parent_id=parent["id"])


@blp.route("/<job_id>/curves")
class Curves(MethodView):
    @blp.arguments(CurvesArgsSchema, location="query")
    @blp.response(200, CurvesSchema)
    def get(self, args: dict, job_id: str):
        """Per-epoch learning curves and probe values (partial while the job runs).

        `after_epoch` returns only later epochs (poll a running job for what is new);
        `max_points` thins a long run to about that many evenly spaced epochs (and sampled
        steps), always keeping the last."""
        job = load_job(job_id)
        after, most = args["after_epoch"], args.get("max_points")
        task = job["request"]["dataset"].get("task", "classification")  # none in requests from before tasks
        curves = pivot_curves(evenly(parts().store.epochs(job_id, after=after), most), task)
        steps = sampled_steps(job, after)
        if steps is not None:
            curves["steps"] = thin_steps(steps, most)
        if job["initial_probes"] is not None and after == 0:
            curves["initial"] = job["initial_probes"]
        return {"job_id": job_id, "status": job["status"], **curves}


def sampled_steps(job: dict, after: int = 0) -> dict | None:
    """The job's sampled training steps in the epochs after ``after`` (None: none recorded)."""
    steps = parts().store.sampled_steps(job["id"], after=after)
    if steps is None and job["steps"] is not None:  # a job recorded before steps were kept per epoch
        steps = {k: [v for v, e in zip(values, job["steps"]["epoch"]) if e > after]
                 for k, values in job["steps"].items()}
    return steps


def thin_steps(steps: dict, most: int | None) -> dict:
    """Sampled steps thinned to at most ``most``, evenly, the last kept."""
    keep = evenly(list(range(len(steps.get("step", [])))), most)
    return {k: [values[i] for i in keep] for k, values in steps.items()}


def evenly(items: list, most: int | None) -> list:
    """At most ``most`` evenly spaced items, the first and the last among them."""
    if most is None or len(items) <= most:
        return items
    if most == 1:
        return items[-1:]
    last = len(items) - 1
    return [items[round(i * last / (most - 1))] for i in range(most)]


@blp.route("/<job_id>/diagnosis")
class Diagnosis(MethodView):
    @blp.response(200, DiagnosisSchema)
    def get(self, job_id: str):
        """The diagnosis: the recipe's verdict and its findings (so far, while the job runs)."""
        job = load_job(job_id)
        diagnosis = job["diagnosis"] or {"verdict": None, "findings": []}
        return {"job_id": job_id, "status": job["status"], "final": job["status"] in FINISHED, **diagnosis}


@blp.route("/<job_id>/weights")
class Weights(MethodView):
    @blp.response(200, {"format": "binary", "type": "string"}, content_type="application/octet-stream",
                  description="safetensors; the normalised request is in the metadata under `spec`, the input "
                              "scaling under `preprocessing`.")
    @blp.alt_response(409, description="The job has no weights yet.")
    def get(self, job_id: str):
        """Download the trained weights (safetensors)."""
        job = load_job(job_id)
        has_weights = (job["artifacts"] or {}).get(WEIGHTS_KEY)
        stored = parts().artifacts.sendable(job_id, WEIGHTS_FILE) if has_weights else None
        if stored is None:
            abort(409, message=f"The job has no weights yet (status {job['status']}).")
        return send_file(stored, mimetype="application/octet-stream", as_attachment=True,
                         download_name=f"{job_id}.safetensors")
