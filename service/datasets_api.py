"""/v1/datasets: the built-in datasets, and uploads (POST, GET and DELETE /v1/datasets/{id})."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flask import Request, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from werkzeug.exceptions import RequestEntityTooLarge

from core.datasets import BUILTIN_DATASETS, CLASSIFICATION, TASKS, describe_builtin, input_shape_problem
from core.upload_parsing import UploadInvalid
from core.upload_sandbox import ParsersBusy, parse_in_child
from core.uploads import IN_USE, MISSING, UploadStore
from service.auth import current_principal
from service.extensions import parts
from service.quotas import too_many
from service.schemas import DatasetListSchema
from service.upload_schemas import UPLOAD_REQUEST_BODY, UploadedDatasetSchema

blp = Blueprint("datasets", __name__, url_prefix="/v1/datasets", description="Datasets")

UPLOAD_FIELDS = {"file", "name", "task", "input_shape"}
INPUT_SHAPE_CHARS = 100
STORAGE_RETRY_AFTER_S = 3600  # room comes back only when the owner deletes uploads (or retention does)


@lru_cache(maxsize=None)
def _describe(name: str, cache_dir: str) -> dict:
    return describe_builtin(name, Path(cache_dir))


def uploads() -> UploadStore:
    p = parts()
    return UploadStore(p.store.engine, p.settings.uploads_dir)


def is_upload(req: Request) -> bool:
    """POST /v1/datasets takes multipart/form-data and its own size cap, not the API's JSON rules."""
    return req.method == "POST" and req.endpoint == "datasets.Datasets"


def dataset_resource(row: dict) -> dict:
    return {**{k: row[k] for k in ("id", "name", "format", "filename", "task", "input_shape", "rows", "features",
                                   "classes", "class_counts", "target", "feature_ranges", "upload_bytes",
                                   "created_at", "last_used_at")},
            "size_bytes": row["stored_bytes"], "links": {"self": url_for("datasets.Dataset", dataset_id=row["id"])}}


def _upload_options(form: dict, errors: dict) -> tuple[str, list[int] | None]:
    """The declared task (default classification; never guessed from the labels) and input shape
    (a JSON list, checked against the feature count once the file is read)."""
    task = form.get("task", CLASSIFICATION)
    if task not in TASKS:
        errors["task"] = [f"Must be one of: {', '.join(TASKS)}."]
    shape = form.get("input_shape")
    if shape is None:
        return task, None
    try:
        if len(shape) > INPUT_SHAPE_CHARS:  # a shape is a few numbers; nothing deeper reaches the JSON parser
            raise ValueError(shape[:20])
        shape = json.loads(shape)
    except ValueError:
        errors["input_shape"] = ['Must be a JSON list, e.g. "[1, 8, 8]".']
        return task, None
    problem = input_shape_problem(shape, None)
    if problem:
        errors["input_shape"] = [problem]
    return task, shape


def _check_storage(owner: str, used: int, adding: int) -> None:
    """429 when the owner's uploads would take more than TRAINRX_MAX_UPLOAD_MB_PER_OWNER."""
    quotas = parts().settings.quotas
    if used + adding > quotas.max_upload_bytes_per_owner:
        too_many(f"Your uploads take {used / 2**20:,.1f} MiB; with this one ({adding / 2**20:,.1f} MiB) they would "
                 f"exceed the {quotas.max_upload_mb_per_owner:,} MiB each owner may store "
                 "(TRAINRX_MAX_UPLOAD_MB_PER_OWNER). Delete uploads you no longer need.", STORAGE_RETRY_AFTER_S)


def _too_large(limit: int) -> str:
    return f"The upload is larger than the {limit:,}-byte limit (TRAINRX_MAX_UPLOAD_BYTES)."


@blp.route("")
class Datasets(MethodView):
    @blp.response(200, DatasetListSchema)
    def get(self):
        """The built-in datasets a job can train on, with shapes and class counts."""
        cache = str(parts().settings.cache_dir)
        return {"items": [_describe(name, cache) for name in BUILTIN_DATASETS]}

    @blp.doc(requestBody=UPLOAD_REQUEST_BODY)
    @blp.response(201, UploadedDatasetSchema, description="Checked and stored.",
                  headers={"Location": {"description": "The dataset's URL", "schema": {"type": "string"}}})
    @blp.alt_response(413, description="Larger than the operator's upload limit (also once decompressed).")
    @blp.alt_response(415, description="Not multipart/form-data.")
    @blp.alt_response(503, description="The API is reading other uploads; retry after `Retry-After` seconds.")
    @blp.alt_response(422, description="Not a usable dataset; `message` names the problem.")
    @blp.alt_response(429, description="The owner's uploads would exceed TRAINRX_MAX_UPLOAD_MB_PER_OWNER (or the "
                                       "rate limit is reached); `Retry-After` says when to try again.")
    def post(self):
        """Upload a dataset (.npz or .csv) to train on with `dataset: {"id": ...}`.

        `task=regression` keeps the labels as numeric targets; `input_shape` lets convolutions
        see each row as `[C, L]` or `[C, H, W]`."""
        limit = parts().settings.limits.max_upload_bytes
        if request.mimetype != "multipart/form-data":
            abort(415, message="Upload the dataset as multipart/form-data, the file in the field 'file' "
                               "(curl -F file=@data.npz).")
        if request.content_length is not None and request.content_length > limit:
            abort(413, message=_too_large(limit))
        owner = current_principal().owner
        # Before reading the body: an upload needs room for its declared size.
        _check_storage(owner, uploads().bytes_used(owner), request.content_length or 0)
        request.max_content_length = limit
        try:
            upload, name = request.files.get("file"), request.form.get("name")
            form = {key: request.form[key] for key in ("task", "input_shape") if key in request.form}
            unknown = (set(request.files) | set(request.form)) - UPLOAD_FIELDS
        except RequestEntityTooLarge:
            abort(413, message=_too_large(limit))
        # A part whose name werkzeug cannot read (an unterminated quote) comes back under None.
        errors = {field or "(a part without a readable name)": ["Unknown field."] for field in sorted(unknown, key=str)}
        if upload is None:
            errors["file"] = ["Missing data for required field."]
        if name is not None and not 1 <= len(name) <= 100:
            errors["name"] = ["Length must be between 1 and 100."]
        task, input_shape = _upload_options(form, errors)
        if errors:
            abort(422, message="The request is invalid.", errors=errors)
        stream = upload.stream
        stream.seek(0, 2)
        size = stream.tell()
        stream.seek(0)
        _check_storage(owner, uploads().bytes_used(owner), size)  # before parsing: room for the file itself
        try:  # in a child process: never on this process's event loop (core/upload_sandbox.py)
            parsed = parse_in_child(stream, upload.filename, parts().settings.limits, parts().settings.uploads_dir,
                                    task)
        except UploadInvalid as exc:
            abort(413 if exc.too_large else 422, message=str(exc), errors={"file": [str(exc)]})
        except ParsersBusy:
            abort(503, message="The API is reading other uploads at the moment; retry in a few seconds.",
                  headers={"Retry-After": "5"})
        shape_problem = None if input_shape is None else input_shape_problem(input_shape, parsed.features)
        if shape_problem:
            abort(422, message=f"input_shape: {shape_problem}", errors={"input_shape": [shape_problem]})
        row = uploads().create(parsed, owner=owner, name=name, filename=upload.filename, upload_bytes=size,
                               input_shape=input_shape)
        # After storing: what it takes on disk counts (float32 features may be larger than a compressed
        # .npz or smaller than CSV text), and two uploads racing for the last room cannot both keep it.
        used = uploads().bytes_used(owner)
        if used > parts().settings.quotas.max_upload_bytes_per_owner:
            uploads().delete(row["id"], owner=owner)
            _check_storage(owner, used - row["stored_bytes"], row["stored_bytes"])
        return dataset_resource(row), 201, {"Location": url_for("datasets.Dataset", dataset_id=row["id"])}


def _load(dataset_id: str) -> dict:
    row = uploads().get(dataset_id, owner=current_principal().scope)
    if row is None:
        hint = " (built-in datasets are listed at GET /v1/datasets)" if dataset_id in BUILTIN_DATASETS else ""
        abort(404, message=f"No uploaded dataset with id {dataset_id!r}{hint}.")
    return row


@blp.route("/<dataset_id>")
class Dataset(MethodView):
    @blp.response(200, UploadedDatasetSchema)
    @blp.alt_response(404, description="No such upload.")
    def get(self, dataset_id: str):
        """An uploaded dataset: rows, features, classes with counts, per-feature ranges, size."""
        return dataset_resource(_load(dataset_id))

    @blp.response(204, description="Deleted: the record and the stored arrays.")
    @blp.alt_response(404, description="No such upload.")
    @blp.alt_response(409, description="A queued or running job trains on it.")
    def delete(self, dataset_id: str):
        """Delete an uploaded dataset (finished jobs keep their results)."""
        _load(dataset_id)
        outcome = uploads().delete(dataset_id, owner=current_principal().scope)  # checks use atomically
        if outcome == IN_USE:
            using = [job_id for job_id, _ in parts().store.active_upload_uses(dataset_id)]
            shown = ", ".join(using[:5]) + (", ..." if len(using) > 5 else "")
            abort(409, message=f"{len(using)} queued or running job(s) train on this dataset ({shown}); cancel "
                               "them or wait until they finish.")
        if outcome == MISSING:
            _load(dataset_id)  # 404: another request deleted it meanwhile
        return None
