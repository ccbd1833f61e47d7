"""Response schemas (everything here is server-written, so dump only)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from core import events
from core.jobstore import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from core.tokens import OWNER_PATTERN, OWNER_RULE

STATUSES = [QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED]


class ProgressSchema(Schema):
    epoch = fields.Integer(metadata={"description": "Epochs finished so far."})
    epochs = fields.Integer(metadata={"description": "Epochs requested."})


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


class TimingsSchema(Schema):
    queued_s = fields.Float(allow_none=True)
    setup_s = fields.Float(allow_none=True)
    train_s = fields.Float(allow_none=True)
    total_s = fields.Float(allow_none=True, metadata={"description": "finished_at - started_at"})


class JobErrorSchema(Schema):
    type = fields.String(metadata={"description": "time_limit, device_unavailable, internal_error, ..."})
    message = fields.String()


class LinksSchema(Schema):
    self = fields.String()
    curves = fields.String()
    diagnosis = fields.String()
    weights = fields.String()
    logs = fields.String()
    model = fields.String(metadata={"description": "The exported model (.pt2)."})
    model_onnx = fields.String(metadata={"description": "The exported model as ONNX."})
    parent = fields.String(metadata={"description": "The job this one was resubmitted from."})


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
    queue = fields.String(validate=validate.OneOf(["cpu", "gpu"]))
    request = fields.Dict(metadata={"description": "The normalised request (object form, defaults filled in)."})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    progress = fields.Nested(ProgressSchema)
    summary = fields.Nested(SummarySchema, allow_none=True)
    timings = fields.Nested(TimingsSchema, allow_none=True)
    error = fields.Nested(JobErrorSchema, allow_none=True)
    data = fields.Dict(allow_none=True, metadata={
        "description": "What the worker trained on: sample counts, features, classes, device, and the input "
                       "scaling (preprocessing)."})
    model = fields.Nested(ModelSchema, allow_none=True, metadata={
        "description": "The exported model, once the job has weights: the torch version it needs, sizes."})
    links = fields.Nested(LinksSchema)


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
    features = fields.Integer()
    classes = fields.Integer()
    samples = fields.Integer(metadata={"description": "Samples split into training and validation."})
    test_samples = fields.Integer(metadata={"description": "Held-out test samples (0: no test set)."})
    class_counts = fields.Dict(keys=fields.String(), values=fields.Integer())
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
