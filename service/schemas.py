"""Response schemas (everything here is server-written, so dump only).

The job resource is the job store's row dumped by ``JobSchema``: renamed
columns use ``attribute=``, and the objects made from several columns
(``progress``, ``links``, ``model``) are :class:`Derived` nested schemas, so the
OpenAPI document still shows their shape.
"""

from __future__ import annotations

from typing import Any, Callable

from flask import url_for
from marshmallow import RAISE, Schema, fields, post_dump, validate
from marshmallow.utils import missing

from core import events
from core.datasets import TASKS
from core.jobstore import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from core.queueing import QUEUES
from core.tokens import OWNER_PATTERN, OWNER_RULE
from service.model_metadata import model_metadata
from service.upload_schemas import TargetSummarySchema

STATUSES = [QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED]


class Derived(fields.Nested):
    """A nested object computed from the whole row (``compute(row)``), dumped by its schema."""

    def __init__(self, nested: Any, compute: Callable[[dict], Any], **kwargs: Any) -> None:
        super().__init__(nested, **kwargs)
        self.compute = compute

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return self.compute(obj)


def _whole_row(row: dict) -> dict:
    return row


class ProgressSchema(Schema):
    epoch = fields.Integer(attribute="progress_epoch", metadata={"description": "Epochs finished so far."})
    epochs = fields.Function(lambda row: row["request"]["epochs"], metadata={"type": "integer",
                                                                             "description": "Epochs requested."})


class SummarySchema(Schema):
    train_loss = fields.Float(allow_none=True)
    val_loss = fields.Float(allow_none=True)
    train_accuracy = fields.Float(allow_none=True)
    val_accuracy = fields.Float(allow_none=True)
    best_epoch = fields.Integer(allow_none=True)
    epochs_run = fields.Integer()
    stopped_early = fields.Boolean()
    returned_epoch = fields.Integer(metadata={"description": "The epoch whose weights are returned."})
    test_loss = fields.Float(allow_none=True, metadata={"description": "Only for datasets with a test set."})
    test_accuracy = fields.Float(allow_none=True, metadata={"description": "Only for datasets with a test set."})
    # Regression jobs report these instead of the accuracies (R² scale-free, MAE in the target's units).
    train_r2 = fields.Float(allow_none=True, metadata={"description": "Regression only."})
    val_r2 = fields.Float(allow_none=True, metadata={"description": "Regression only."})
    train_mae = fields.Float(allow_none=True, metadata={"description": "Regression only, in the target's units."})
    val_mae = fields.Float(allow_none=True, metadata={"description": "Regression only, in the target's units."})
    test_r2 = fields.Float(allow_none=True, metadata={"description": "Regression, with a test set."})
    test_mae = fields.Float(allow_none=True, metadata={"description": "Regression, with a test set."})


class TimingsSchema(Schema):
    queued_s = fields.Float(allow_none=True)
    setup_s = fields.Float(allow_none=True)
    train_s = fields.Float(allow_none=True)
    total_s = fields.Float(allow_none=True, metadata={"description": "finished_at - started_at"})


class JobErrorSchema(Schema):
    type = fields.String(metadata={"description": "time_limit, worker_lost, dataset_unavailable, "
                                                  "device_unavailable, internal_error"})
    message = fields.String()


def _link(endpoint: str, key: str = "id") -> fields.Function:
    return fields.Function(lambda row: url_for(endpoint, job_id=row[key]) if row.get(key) else None,
                           metadata={"type": "string"})


class LinksSchema(Schema):
    self = _link("jobs.Job")
    curves = _link("jobs.Curves")
    diagnosis = _link("jobs.Diagnosis")
    weights = _link("jobs.Weights")
    logs = _link("jobs.Logs")
    model = fields.Function(lambda row: url_for("jobs.Model", job_id=row["id"]),
                            metadata={"type": "string", "description": "The exported model (.pt2)."})
    model_onnx = fields.Function(lambda row: url_for("jobs.ModelOnnx", job_id=row["id"]),
                                 metadata={"type": "string", "description": "The exported model as ONNX."})
    parent = fields.Function(lambda row: url_for("jobs.Job", job_id=row["parent_id"]) if row.get("parent_id")
                             else None,
                             metadata={"type": "string", "description": "The job this one was resubmitted from."})

    sweep = fields.Function(lambda row: url_for("sweeps.Sweep", sweep_id=row["sweep_id"]) if row.get("sweep_id")
                            else None,
                            metadata={"type": "string", "description": "The sweep this job is a child of."})

    @post_dump
    def _only_a_real_parent(self, data: dict, **kwargs: Any) -> dict:
        for link in ("parent", "sweep"):
            if data.get(link) is None:
                data.pop(link, None)
        return data


class ModelOnnxSchema(Schema):
    opset = fields.Integer()
    bytes = fields.Integer()


class ModelSchema(Schema):
    format = fields.String(metadata={"description": "torch.export"})
    torch_version = fields.String(allow_none=True, metadata={
        "description": "The torch that exported the .pt2; loading it needs a compatible one (docs/models.md)."})
    bytes = fields.Integer(allow_none=True)
    onnx = fields.Nested(ModelOnnxSchema, allow_none=True)
    errors = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "Why an export is missing (pt2, onnx); absent when none is."})


class JobSchema(Schema):
    id = fields.String()
    owner = fields.String(metadata={"description": "Who submitted it (the token's owner)."})
    name = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(STATUSES))
    queue = fields.String(validate=validate.OneOf(list(QUEUES)))
    request = fields.Dict(metadata={"description": "The normalised request (object form, defaults filled in)."})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    attempts = fields.Integer(metadata={"description": "Workers lost while running this job so far (killed, out "
                                                       "of memory, host gone); it resumes from its last "
                                                       "checkpoint once, then ends failed (worker_lost)."})
    progress = Derived(ProgressSchema, _whole_row)
    summary = fields.Nested(SummarySchema, allow_none=True)
    timings = fields.Nested(TimingsSchema, allow_none=True)
    error = fields.Nested(JobErrorSchema, allow_none=True)
    data = fields.Dict(attribute="data_info", allow_none=True, metadata={
        "description": "What the worker trained on: sample counts, features, classes, device, and the input "
                       "scaling (preprocessing)."})
    model = Derived(ModelSchema, model_metadata, allow_none=True, metadata={
        "description": "The exported model, once the job has weights: the torch version it needs, sizes."})
    links = Derived(LinksSchema, _whole_row)


class ResubmitSchema(Schema):
    class Meta:
        unknown = RAISE
        openapi_merge_patches = {"patch": "JobRequest"}  # documented by service/openapi_extras.py

    patch = fields.Dict(required=True, metadata={
        "description": "A JSON merge patch on the parent's normalised request, e.g. a diagnosis suggestion's "
                       "`patch`: null removes a key, objects merge, anything else replaces."})


class JobListSchema(Schema):
    items = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as cursor for the next page."})


class CurvesArgsSchema(Schema):
    after_epoch = fields.Integer(load_default=0, validate=validate.Range(min=0),
                                 metadata={"description": "Only epochs after this one (and their sampled steps)."})
    max_points = fields.Integer(validate=validate.Range(min=2, max=100_000),
                                metadata={"description": "Thin the curves to about this many evenly spaced "
                                                         "epochs, first and last kept (long runs)."})


class JobListArgsSchema(Schema):
    owner = fields.String(validate=validate.Regexp(OWNER_PATTERN, error=f"Must be {OWNER_RULE}."),
                          metadata={"description": "Admins only: another owner's jobs (default: your own)."})
    status = fields.String(validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String()


def _per_layer(description: str) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.List(fields.Float(allow_none=True)),
                       metadata={"description": description + " One list per layer."})


class StepsSchema(Schema):
    """Sampled training steps: every step at the start, then about ten an epoch."""

    step = fields.List(fields.Integer())
    epoch = fields.List(fields.Integer())
    loss = fields.List(fields.Float(allow_none=True), metadata={"description": "Batch loss."})
    grad_norm = fields.List(fields.Float(allow_none=True), metadata={"description": "Total gradient L2 norm."})


class CurvesSchema(Schema):
    job_id = fields.String()
    status = fields.String()
    epoch = fields.List(fields.Integer(), metadata={"description": "Epochs counted from 1."})
    train_loss = fields.List(fields.Float(allow_none=True),
                             metadata={"description": "Eval-mode pass over (up to 10,000) training samples."})
    train_accuracy = fields.List(fields.Float(allow_none=True))
    val_loss = fields.List(fields.Float(allow_none=True))
    val_accuracy = fields.List(fields.Float(allow_none=True))
    train_r2 = fields.List(fields.Float(allow_none=True), metadata={"description": "Regression only."})
    val_r2 = fields.List(fields.Float(allow_none=True), metadata={"description": "Regression only."})
    train_mae = fields.List(fields.Float(allow_none=True),
                            metadata={"description": "Regression only, in the target's units."})
    val_mae = fields.List(fields.Float(allow_none=True),
                          metadata={"description": "Regression only, in the target's units."})
    learning_rate = fields.List(fields.Float(allow_none=True))
    grad_norm = fields.Dict(keys=fields.String(), values=fields.List(fields.Float(allow_none=True)),
                            metadata={"description": "Per weight layer (input to output): mean over the "
                                                     "epoch's steps of the gradient's L2 norm."})
    # Probe values (absent when the request has "diagnose": false).
    grad_norm_max = _per_layer("Largest gradient L2 norm of the epoch's steps.")
    grad_ratio = fields.List(fields.Float(allow_none=True),
                             metadata={"description": "First-layer over last-layer mean gradient norm."})
    weight_norm = _per_layer("Weight matrix L2 norm at the end of the epoch.")
    update_ratio = _per_layer("Norm of the epoch's weight change over the weight norm.")
    dead_fraction = _per_layer("ReLU-family activations: share of units that never activate on a probe batch "
                               "of up to 512 training samples (hidden layers).")
    saturated_fraction = _per_layer("sigmoid/tanh: share of pre-activations in the flat range (output within "
                                    "1% of its bound).")
    activation_variance = _per_layer("Variance of each hidden layer's activations on the probe batch.")
    nonfinite = fields.List(fields.Boolean(), metadata={"description": "NaN/Inf seen in gradients or weights."})
    steps = fields.Nested(StepsSchema)
    initial = fields.Dict(metadata={"description": "Activation statistics before the first step."})


class FindingSchema(Schema):
    code = fields.String()
    severity = fields.String(validate=validate.OneOf(["error", "warning", "info"]))
    epoch = fields.Integer(allow_none=True)
    evidence = fields.Dict()
    explanation = fields.String()
    suggestions = fields.List(fields.Dict())


class DiagnosisSchema(Schema):
    job_id = fields.String()
    status = fields.String()
    final = fields.Boolean(metadata={"description": "False while the job runs: the diagnosis so far."})
    verdict = fields.String(allow_none=True, validate=validate.OneOf(["healthy", "training_problem", "overfitting"]))
    findings = fields.List(fields.Nested(FindingSchema))


class DatasetSchema(Schema):
    name = fields.String()
    description = fields.String()
    task = fields.String(validate=validate.OneOf(TASKS),
                         metadata={"description": "classification or regression (one output, `classes` 0)."})
    input_shape = fields.List(fields.Integer(), allow_none=True, metadata={
        "description": "How convolutions see a row: [C, L] or [C, H, W]; null: no spatial shape (no `cnn`)."})
    features = fields.Integer()
    classes = fields.Integer(metadata={"description": "0 for regression."})
    samples = fields.Integer(metadata={"description": "Samples split into training and validation."})
    test_samples = fields.Integer(metadata={"description": "Held-out test samples (0: no test set)."})
    class_counts = fields.Dict(keys=fields.String(), values=fields.Integer(),
                               metadata={"description": "Empty for regression."})
    target = fields.Nested(TargetSummarySchema, metadata={"description": "Regression only: the targets' range "
                                                                        "and spread, in their units."})
    preprocessing = fields.Dict()


class DatasetListSchema(Schema):
    items = fields.List(fields.Nested(DatasetSchema))


class HealthSchema(Schema):
    status = fields.String()
    workers = fields.Integer()
    version = fields.String()


class OwnerArgsSchema(Schema):
    owner = fields.String(validate=validate.Regexp(OWNER_PATTERN, error=f"Must be {OWNER_RULE}."),
                          metadata={"description": "Admins only: another owner's resources (default: your own)."})


class JobEventSchema(Schema):
    """One server-sent event of GET /v1/jobs/{id}/events, as an EventSource client sees it."""

    event = fields.String(required=True, validate=validate.OneOf([events.STATUS, events.EPOCH, events.END]))
    id = fields.String(validate=validate.Regexp(r"^[0-9]+$"),
                       metadata={"description": "Increases within the job; send it back as Last-Event-ID."})
    data = fields.String(required=True, metadata={
        "description": "JSON: the job's status and timestamps (`status`), that epoch's curves row (`epoch`), "
                       "or the finished job (`end`)."})
    retry = fields.Integer(metadata={"description": "The reconnect delay in milliseconds."})
