"""The training request: what a valid one is, and its normalised form.

This is the one definition both sides use: the API validates with it, the
worker trusts what it produced. Loading a request returns the *normalised*
request: every component in object form, every default filled in, and no
knob that does not apply. Loading a normalised request gives it back unchanged.

What depends on the dataset is resolved here too: ``dataset.task`` and
``dataset.input_shape`` (from the built-in registry, or the upload through the
resolver), the loss (the task's default), the early-stopping monitor and the
targets (the task's metrics only), and for a cnn the spatial size after every
block. Requests stored before these keys existed lack them; readers default
them (docs/requests.md, "Older requests").

The activations and optimizers live in core/spec_components.py, the
architecture in core/spec_architecture.py; everything is importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from core import cost
from core.cost import count_parameters
from core.datasets import (BUILTIN_DATASETS, CLASSIFICATION, INPUT_SHAPE_RULE, REGRESSION, TASKS, DatasetShape,
                           input_shape_problem)
from core.settings import Limits
from core.spec_architecture import ARCHITECTURES, ArchitectureSpec
from core.spec_components import (ACTIVATIONS, DEFAULT_LIMITS, OPTIMIZERS, AdamOptimizer, Component, ReluActivation,
                                  Strict, strict_bool, strict_int)

# Uploaded datasets live in the database, which this module does not know: whoever
# validates a request (the API, the worker checking a diagnosis patch) passes a
# resolver that gives an upload's shape, or None when there is no such upload.
DatasetResolver = Callable[[str], "DatasetShape | None"]


def dataset_shape(dataset: dict, resolver: DatasetResolver | None) -> DatasetShape | None:
    """The shape of a request's dataset; None when it cannot be known (no resolver, or no such upload)."""
    if dataset.get("name") in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[dataset["name"]].shape
    if dataset.get("id") is None or resolver is None:
        return None
    return resolver(dataset["id"])


# --- the dataset, regularization, early stopping, targets ----------------

SCALES = ("none", "standard", "minmax")
LOSSES = {CLASSIFICATION: ("cross_entropy",), REGRESSION: ("mse", "huber")}  # the first is the default
MONITORS = {CLASSIFICATION: ("val_loss", "val_accuracy"), REGRESSION: ("val_loss", "val_r2", "val_mae")}
TARGETS = {CLASSIFICATION: ("train_accuracy", "val_accuracy"), REGRESSION: ("train_r2", "val_r2")}
# For the OpenAPI document: which built-ins have which task, and which have an input shape.
_BUILTINS_OF = {task: [name for name, d in BUILTIN_DATASETS.items() if d.task == task] for task in TASKS}
_SHAPED_BUILTINS = [name for name, d in BUILTIN_DATASETS.items() if d.input_shape is not None]


class DatasetSpec(Strict):
    class Meta(Strict.Meta):
        # For the OpenAPI document (service/openapi_extras.py): what _one_source checks.
        openapi = {"oneOf": [
            {"required": ["name"], "not": {"anyOf": [{"required": ["id"]}, {"required": ["scale"]}]}},
            {"required": ["id"], "not": {"required": ["name"]}},
        ], "anyOf": [
            {"required": ["id"]},
            *({"required": ["name"], "properties": {
                "name": {"enum": [name]}, "task": {"enum": [d.task]},
                "input_shape": {"enum": [None if d.input_shape is None else list(d.input_shape)]}}}
              for name, d in BUILTIN_DATASETS.items()),
        ]}

    name = fields.String(validate=validate.OneOf(list(BUILTIN_DATASETS)),
                         metadata={"description": "A built-in dataset (see GET /v1/datasets); give name or id."})
    id = fields.String(metadata={"description": "An uploaded dataset (POST /v1/datasets); give name or id."})
    validation_split = fields.Float(load_default=0.2, validate=validate.Range(min=0, max=0.5, min_inclusive=False),
                                    metadata={"description": "Share of the data held out for validation, "
                                                             "stratified by class (random for regression)."})
    train_samples = strict_int(load_default=None, allow_none=True, validate=validate.Range(min=1),
                               metadata={"description": "Keep only the first N training samples after the split."})
    split_seed = strict_int(load_default=0, validate=validate.Range(min=0, max=2**32 - 1),
                            metadata={"description": "Fixes the split; independent of the training seed."})
    scale = fields.String(validate=validate.OneOf(SCALES),
                          metadata={"default": "none", "description": "Uploads only: `standard` ((x - mean) / std) "
                                    "or `minmax` ((x - min) / (max - min)), fitted on the training split; `none` "
                                    "uses the data as given."})
    task = fields.String(validate=validate.OneOf(TASKS), metadata={
        "description": "Set by the dataset (the built-in's, or the upload's declared task) and echoed in the "
                       "normalised request; a request may repeat it but not change it."})
    input_shape = fields.List(strict_int(validate=validate.Range(min=1)), allow_none=True,
                              validate=validate.Length(min=2, max=3), metadata={
        "description": f"Uploads: how convolutions see a row, {INPUT_SHAPE_RULE} (channels first, C order), "
                       "whose product is the feature count; default (null) the upload's own `input_shape`. "
                       "Built-in datasets have a fixed shape (GET /v1/datasets), which the normalised request "
                       "shows; a request may repeat it, not change it."})

    @validates_schema
    def _one_source(self, data: dict, **kwargs: Any) -> None:
        if "name" in data and "id" in data:
            raise ValidationError("Give name (a built-in dataset) or id (an upload), not both.", "id")
        if "name" not in data and "id" not in data:
            raise ValidationError("Missing data for required field: give name (a built-in dataset) or id "
                                  "(an upload).", "name")
        if "name" in data and "scale" in data:
            raise ValidationError("Only applies to uploaded datasets (dataset.id); built-in datasets come "
                                  "scaled.", "scale")

    @post_load
    def _normalise_upload(self, data: dict, **kwargs: Any) -> dict:
        if "id" in data:
            data.setdefault("scale", "none")
        return data


class RegularizationSpec(Strict):
    l1 = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=10),
                      metadata={"description": "Adds l1 * sum|w| over weight matrices to the loss."})
    l2 = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=10),
                      metadata={"description": "Adds l2 / 2 * sum w^2 over weight matrices to the loss."})
    dropout = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=1, max_inclusive=False),
                           metadata={"description": "Drop probability after each hidden activation (dense "
                                                    "layers and conv blocks)."})


class EarlyStoppingSpec(Strict):
    monitor = fields.String(load_default="val_loss", validate=validate.OneOf(
        sorted({m for monitors in MONITORS.values() for m in monitors}, key=lambda m: (m != "val_loss", m))),
        metadata={"description": "classification: val_loss or val_accuracy; regression: val_loss, val_r2 or "
                                 "val_mae (lower is better for losses and val_mae)."})
    min_delta = fields.Float(load_default=0.0, validate=validate.Range(min=0),
                             metadata={"description": "Smallest change that counts as an improvement."})
    restore_best = strict_bool(load_default=True,
                               metadata={"description": "Return the weights of the best epoch."})


class TargetsSpec(Strict):
    train_accuracy = fields.Float(allow_none=True, validate=validate.Range(min=0, max=1),
                                  metadata={"description": "Classification: training accuracy that counts as "
                                                           "fitting the training data (recipe step 1). Default: "
                                                           "halfway from chance to perfect; see docs/diagnosis.md."})
    val_accuracy = fields.Float(allow_none=True, validate=validate.Range(min=0, max=1),
                                metadata={"description": "Classification: an absolute bar for validation accuracy "
                                                         "(recipe step 2). Default: none; overfitting is judged by "
                                                         "the train/validation gap and the validation loss curve."})
    train_r2 = fields.Float(allow_none=True, validate=validate.Range(min=0, max=1),
                            metadata={"description": "Regression: training R² that counts as fitting the training "
                                                     "data. Default 0.5 (0 is predicting the training mean)."})
    val_r2 = fields.Float(allow_none=True, validate=validate.Range(min=0, max=1),
                          metadata={"description": "Regression: an absolute bar for validation R². Default: none."})


# A verified remedy tries at most this many of the diagnosis' patches (core/remedies.py).
MAX_REMEDY_ATTEMPTS = 5


class AutoRemedySpec(Strict):
    max_attempts = strict_int(load_default=3, validate=validate.Range(min=1, max=MAX_REMEDY_ATTEMPTS),
                              metadata={"description": "How many of the diagnosis' patches to try, in its order."})


def _task_rules(task: str) -> dict:
    """For the OpenAPI document: what a request on a dataset of ``task`` may say (an upload's task is
    known only to the server, so an ``id`` fits either)."""
    other = [key for other in TASKS if other != task for key in TARGETS[other]]
    return {"properties": {
        "dataset": {"anyOf": [{"required": ["id"]}, {"properties": {"name": {"enum": _BUILTINS_OF[task]}}}]},
        "loss": {"enum": [*LOSSES[task], None]},
        "early_stopping": {"properties": {"monitor": {"enum": list(MONITORS[task])}}},
        "targets": {"properties": {key: {"enum": [None]} for key in other}}},
        "description": {CLASSIFICATION: "On a classification dataset: cross_entropy, accuracy metrics.",
                        REGRESSION: "On a regression dataset: mse or huber, R² and MAE metrics."}[task]}


@dataclass(frozen=True)
class ResolvedDataset:
    """What validation knows of a request's dataset: its shape (None when it cannot be known: an
    upload without a resolver), its task, and the input shape in force (the request's own
    ``dataset.input_shape``, else the dataset's)."""

    shape: DatasetShape | None
    task: str
    input_shape: tuple[int, ...] | None


class JobRequestSchema(Strict):
    """A training request (POST /v1/jobs)."""

    class Meta(Strict.Meta):
        # For the OpenAPI document (service/openapi_extras.py): the rules across fields of _check_request.
        openapi = {"allOf": [
            {"anyOf": [{"required": ["patience"], "properties": {"patience": {"type": "integer"}}},
                       {"not": {"required": ["early_stopping"]}},
                       {"properties": {"early_stopping": {"type": "object", "nullable": True, "enum": [None]}}}],
             "description": "early_stopping only with patience set."},
            {"anyOf": [{"properties": {"batch_size": {"minimum": 2}}},
                       {"properties": {"architecture": {"properties": {"batch_norm": {"enum": [False]}}}}}],
             "description": "Batch norm needs batches of at least 2 samples."},
            {"anyOf": [_task_rules(task) for task in TASKS],
             "description": "The dataset's task decides the loss and the metrics that apply."},
            {"anyOf": [{"properties": {"architecture": {"properties": {"type": {"enum": ["mlp"]}}}}},
                       {"properties": {"dataset": {"anyOf": [
                           {"required": ["id"]},
                           {"required": ["name"], "properties": {"name": {"enum": _SHAPED_BUILTINS}}}]}}}],
             "description": "A cnn needs a dataset with an input shape: a built-in that has one, or an upload "
                            "declared with one (at upload, or in dataset.input_shape)."},
        ]}

    name = fields.String(load_default=None, allow_none=True,
                         validate=[validate.Length(max=100),
                                   validate.Regexp(r"^[^\x00]*$", error="Must not contain NUL characters.")])
    dataset = fields.Nested(DatasetSpec, required=True)
    architecture = fields.Nested(ArchitectureSpec, required=True)
    activation = Component("activation", ACTIVATIONS, load_default=lambda: ReluActivation().load({"name": "relu"}),
                           metadata={"default": "relu"})
    optimizer = Component("optimizer", OPTIMIZERS, load_default=lambda: AdamOptimizer().load({"name": "adam"}),
                          metadata={"default": "adam"})
    loss = fields.String(load_default=None, allow_none=True,
                         validate=validate.OneOf([loss for losses in LOSSES.values() for loss in losses]),
                         metadata={"description": "classification: cross_entropy (the default and only choice); "
                                                  "regression: mse (the default) or huber (delta 1, on "
                                                  "standardised targets). null: the task's default."})
    regularization = fields.Nested(RegularizationSpec, load_default=lambda: RegularizationSpec().load({}),
                                   metadata={"default": {"l1": 0.0, "l2": 0.0, "dropout": 0.0}})
    patience = strict_int(load_default=None, allow_none=True, validate=validate.Range(min=1, max=1000),
                          metadata={"description": "Early stopping: epochs without improvement before stopping; "
                                                   "null turns it off."})
    early_stopping = fields.Nested(EarlyStoppingSpec, load_default=None, allow_none=True,
                                   metadata={"description": "Only with patience set."})
    epochs = strict_int(load_default=20, validate=validate.Range(min=1),
                        metadata={"maximum": DEFAULT_LIMITS.max_epochs,
                                  "description": f"1-{DEFAULT_LIMITS.max_epochs} (operator limit)."})
    batch_size = strict_int(load_default=64, validate=validate.Range(min=1),
                            metadata={"maximum": DEFAULT_LIMITS.max_batch_size,
                                      "description": f"1-{DEFAULT_LIMITS.max_batch_size} (operator limit)."})
    seed = strict_int(load_default=0, validate=validate.Range(min=0, max=2**32 - 1))
    device = fields.String(load_default="auto", validate=validate.OneOf(["auto", "cpu", "cuda"]),
                           metadata={"description": "cuda sends the job to the gpu queue; auto runs on CUDA "
                                                    "when a GPU worker takes it."})
    diagnose = strict_bool(load_default=True,
                           metadata={"description": "Probe the training (gradients, activations, step losses) "
                                                    "for the diagnosis; false turns the probes off."})
    targets = fields.Nested(TargetsSpec, load_default=None, allow_none=True,
                            metadata={"description": "Override what counts as good on training and validation "
                                                     "data: the accuracy keys for classification, the R² keys for "
                                                     "regression; null uses the documented defaults."})
    auto_remedy = fields.Nested(AutoRemedySpec, load_default=None, allow_none=True, metadata={
        "description": "When the job ends with a final verdict that is not healthy, run its verified remedies "
                       "(docs/remedies.md) by itself, as POST /v1/jobs/{id}/remedies would. null: off. The "
                       "remedy's children never inherit it."})
    max_runtime_s = strict_int(load_default=None, validate=validate.Range(min=1),
                               metadata={"maximum": DEFAULT_LIMITS.max_runtime_s,
                                         "default": DEFAULT_LIMITS.default_runtime_s,
                                         "description": "Wall-clock budget; default and cap set by the operator "
                                                        f"(default {DEFAULT_LIMITS.default_runtime_s})."})

    def __init__(self, *, limits: Limits | None = None, resolver: DatasetResolver | None = None,
                 **kwargs: Any) -> None:
        """``limits`` are the operator's, and required to load; ``resolver`` gives an upload's shape.
        Without ``limits`` the schema only describes the request (the OpenAPI document)."""
        super().__init__(**kwargs)
        self.limits = limits
        self.resolver = resolver
        self._shapes: dict[str, DatasetShape | None] = {}  # one resolver call per upload and request

    # Every limit and shape check is here, so that the nested schemas need nothing from the outside.
    # This one runs even when other fields failed (their values are then missing from ``data``, or
    # partial for a nested object), so that every bad field is reported at once.
    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_request(self, data: dict, original: Any, **kwargs: Any) -> None:
        limits = self._limits()
        errors: dict[str, Any] = {}
        if data.get("epochs", 0) > limits.max_epochs:
            errors["epochs"] = [f"Must be at most {limits.max_epochs}."]
        if data.get("batch_size", 0) > limits.max_batch_size:
            errors["batch_size"] = [f"Must be at most {limits.max_batch_size}."]
        runtime = data.get("max_runtime_s")
        if runtime is not None and runtime > limits.max_runtime_s:
            errors["max_runtime_s"] = [f"Must be at most {limits.max_runtime_s}."]
        if data.get("early_stopping") is not None and data.get("patience") is None:
            errors["early_stopping"] = ["Only applies when patience is set."]
        arch = data.get("architecture") or {}
        if arch.get("batch_norm") and data.get("batch_size") == 1:
            errors["batch_size"] = ["Batch norm needs batches of at least 2 samples."]
        # The blocks as sent: a block with a bad field is missing from ``arch``, but its width still counts.
        raw_arch = original.get("architecture")
        raw_blocks = raw_arch.get("conv_layers") if isinstance(raw_arch, dict) else None
        arch_errors = self._architecture_errors(arch, limits, raw_blocks)
        if data.get("dataset"):
            resolved, dataset_errors = self._resolve(data["dataset"], limits)
            if dataset_errors:
                errors["dataset"] = dataset_errors
            if "id" not in dataset_errors:  # an unknown upload has no task or shape to check against
                arch_errors.update(self._shape_errors(arch, data.get("activation"), data["dataset"], resolved))
                errors.update(self._task_errors(data, resolved.task))
        if arch_errors:
            errors["architecture"] = arch_errors
        if errors:
            raise ValidationError(errors)

    # These need the whole request, so they run only once every field is valid.
    @validates_schema
    def _check_cost(self, data: dict, **kwargs: Any) -> None:
        limits = self._limits()
        resolved, problems = self._resolve(data["dataset"], limits)
        arch = data["architecture"]
        if (resolved.shape is None or problems or self._architecture_errors(arch, limits)
                or self._shape_errors(arch, data["activation"], data["dataset"], resolved)):
            return
        shape = resolved.shape
        net = cost.network(arch, data["activation"], shape.features, shape.outputs, resolved.input_shape)
        parameters = cost.parameters_of(net, data["activation"], arch["batch_norm"])
        if parameters > limits.max_parameters:
            where = "conv_layers" if net.convs else "hidden_layers"
            raise ValidationError({"architecture": {where: [
                f"The network would have {parameters:,} parameters; at most {limits.max_parameters:,} are "
                "allowed."]}})
        request = {**data, "dataset": {**data["dataset"], "input_shape": resolved.input_shape}}
        over = cost.over_limits(cost.estimate(request, shape), data, limits.max_work, limits.max_job_memory_mb)
        if over:
            raise ValidationError({"cost": over})

    def _limits(self) -> Limits:
        if self.limits is None:
            raise TypeError("JobRequestSchema needs the operator's limits to load a request: "
                            "use core.spec.normalise(payload, limits=..., resolver=...).")
        return self.limits

    def _shape_of(self, dataset: dict) -> DatasetShape | None:
        key = dataset.get("id")
        if key is None or key not in self._shapes:
            found = dataset_shape(dataset, self.resolver)
            if key is None:
                return found
            self._shapes[key] = found
        return self._shapes[key]

    def _resolve(self, dataset: dict, limits: Limits) -> tuple[ResolvedDataset, dict[str, list[str]]]:
        """The dataset's shape, task and input shape in force, and what is wrong with the dataset part."""
        errors: dict[str, list[str]] = {}
        shape = self._shape_of(dataset) if ("name" in dataset) != ("id" in dataset) else None
        source = "id" if "id" in dataset else "name"
        if shape is None and "id" in dataset and "name" not in dataset and self.resolver is not None:
            errors["id"] = [f"No uploaded dataset with id {dataset['id']!r}."]
        elif shape is not None and shape.classes > limits.max_classes:
            errors[source] = [f"The dataset has {shape.classes:,} classes; at most {limits.max_classes:,} are "
                              "allowed (TRAINRX_MAX_CLASSES)."]
        task = shape.task if shape is not None else dataset.get("task", CLASSIFICATION)
        if shape is not None and dataset.get("task", task) != task:
            errors["task"] = [f"Set by the dataset, which is a {task} dataset; leave dataset.task out (null in a "
                              "resubmit patch that changes the dataset)."]
        given = dataset.get("input_shape")
        input_shape = shape.input_shape if shape is not None else None
        if given is not None and "name" in dataset:
            if shape is not None and tuple(given) != shape.input_shape:
                fixed = "no input shape" if shape.input_shape is None else f"the shape {list(shape.input_shape)}"
                errors["input_shape"] = [f"{dataset['name']!r} has {fixed}, which a request cannot change; "
                                         "dataset.input_shape applies to uploads (null in a resubmit patch that "
                                         "changes the dataset)."]
        elif given is not None:
            problem = input_shape_problem(given, shape.features if shape is not None else None)
            if problem:
                errors["input_shape"] = [problem]
            else:
                input_shape = tuple(given)
        resolved_shape = None if shape is None else replace(shape, input_shape=input_shape)
        return ResolvedDataset(resolved_shape, task, input_shape), errors

    @staticmethod
    def _architecture_errors(arch: dict, limits: Limits, raw_blocks: Any = None) -> dict[str, Any]:
        """Layer counts and widths against the operator's limits (the field schemas cannot know them).
        ``raw_blocks`` are the conv blocks as sent: one with a bad field is missing from ``arch``, but
        its width is still checked."""
        errors: dict[str, Any] = {}
        cnn = arch.get("type") == "cnn"
        widths = arch.get("hidden_layers")
        if widths is not None:
            fewest = 0 if cnn else 1
            if not fewest <= len(widths) <= limits.max_hidden_layers:
                errors["hidden_layers"] = [f"Must have {fewest} to {limits.max_hidden_layers} layers"
                                           + (" (the dense head of a cnn)." if cnn else ".")]
            else:
                bad = [(i, w) for i, w in enumerate(widths) if not 1 <= w <= limits.max_width]
                if bad:
                    where = ", ".join(f"{w} at position {i}" for i, w in bad[:5])
                    errors["hidden_layers"] = [f"Widths must be between 1 and {limits.max_width}; got {where}."]
        blocks = raw_blocks if isinstance(raw_blocks, list) else arch.get("conv_layers")
        if cnn and isinstance(blocks, list):
            if not 1 <= len(blocks) <= limits.max_hidden_layers:
                errors["conv_layers"] = [f"Must have 1 to {limits.max_hidden_layers} blocks "
                                         "(TRAINRX_MAX_HIDDEN_LAYERS)."]
            else:
                wide = {i: {"channels": [f"Must be at most {limits.max_width} (TRAINRX_MAX_WIDTH)."]}
                        for i, channels in enumerate(map(_channels, blocks))
                        if channels is not None and channels > limits.max_width}
                if wide:
                    errors["conv_layers"] = wide
        return errors

    @staticmethod
    def _shape_errors(arch: dict, activation: dict | None, dataset: dict,
                      resolved: ResolvedDataset) -> dict[str, Any]:
        """A cnn needs an input shape, and a spatial size of at least 1 after every stride and pool."""
        if arch.get("type") != "cnn":
            return {}
        if resolved.input_shape is None:
            if resolved.shape is None:  # an upload without a resolver: taken on trust
                return {}
            name = repr(dataset["name"]) if "name" in dataset else "this upload"
            return {"type": [f"A cnn needs a dataset with an input shape, and {name} has none: its features have "
                             "no spatial arrangement. Use an mlp, or give dataset.input_shape (e.g. [1, "
                             f"{resolved.shape.features}] for a 1-D signal)."]}
        if not _complete_blocks(arch):
            return {}
        blocks = cost.conv_blocks(resolved.input_shape, arch["conv_layers"], activation or {"name": "relu"})
        path = ["x".join(map(str, resolved.input_shape[1:]))]
        for i, block in enumerate(blocks):
            if min(block.conv_size) < 1:  # unreachable with odd kernels and same padding; kept for safety
                return {"conv_layers": {i: [f"The spatial size would be {_size(block.conv_size)} after this "
                                            f"block's stride {block.stride}: {' -> '.join(path)}."]}}
            if min(block.out_size) < 1:
                path.append(_size(block.out_size))
                return {"conv_layers": {i: [
                    f"The spatial size would be {_size(block.out_size)} after this block's {block.pool} pool "
                    f"(a 2-wide pool needs at least 2): input {' -> '.join(path)}. Remove a pool or a stride "
                    "before it, or use fewer blocks."]}}
            path.append(_size(block.out_size))
        return {}

    @staticmethod
    def _task_errors(data: dict, task: str) -> dict[str, Any]:
        """The loss, the early-stopping monitor and the targets must be the dataset's task's."""
        errors: dict[str, Any] = {}
        loss = data.get("loss")
        if loss is not None and loss not in LOSSES[task]:
            errors["loss"] = [f"{loss!r} does not apply to a {task} dataset; use one of: {', '.join(LOSSES[task])} "
                              "(null: the default)."]
        monitor = (data.get("early_stopping") or {}).get("monitor")
        if monitor is not None and monitor not in MONITORS[task] and data.get("patience") is not None:
            errors["early_stopping"] = {"monitor": [f"{monitor!r} is not a {task} metric; use one of: "
                                                    f"{', '.join(MONITORS[task])}."]}
        targets = data.get("targets") or {}
        wrong = {key: [f"Only applies to {other} datasets; this is a {task} dataset (use "
                       f"{' or '.join(TARGETS[task])})."]
                 for other in TASKS if other != task for key in TARGETS[other] if targets.get(key) is not None}
        if wrong:
            errors["targets"] = wrong
        return errors

    @post_load
    def _normalise(self, data: dict, **kwargs: Any) -> dict:
        resolved, _ = self._resolve(data["dataset"], self._limits())
        data["dataset"]["task"] = resolved.task
        data["dataset"]["input_shape"] = None if resolved.input_shape is None else list(resolved.input_shape)
        if data.get("loss") is None:
            data["loss"] = LOSSES[resolved.task][0]
        if data.get("targets") is not None:
            data["targets"] = {key: data["targets"].get(key) for key in TARGETS[resolved.task]}
        if data.get("max_runtime_s") is None:
            data["max_runtime_s"] = self._limits().default_runtime_s
        if data.get("patience") is None:
            data.pop("early_stopping", None)
        elif data.get("early_stopping") is None:
            data["early_stopping"] = EarlyStoppingSpec().load({})
        return data


def _channels(block: Any) -> int | None:
    """A block's channels as sent (a bare integer or the object's), when they are an integer."""
    channels = block.get("channels") if isinstance(block, dict) else block
    return channels if isinstance(channels, int) and not isinstance(channels, bool) else None


def _complete_blocks(arch: dict) -> list[dict] | None:
    """The conv blocks when every one loaded (a list with a bad block holds only the good ones)."""
    blocks = arch.get("conv_layers")
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and len(b) == 4 for b in blocks):
        return None
    return blocks


def _size(size: tuple[int, ...]) -> str:
    return "x".join(map(str, size))


def normalise(payload: Any, *, limits: Limits, resolver: DatasetResolver | None) -> dict:
    """Validate a request against the operator's ``limits`` and return its normalised form.

    ``resolver`` gives an uploaded dataset's shape (with its task and input
    shape); with it an unknown upload id is refused and an upload job's
    parameters, classes, task, convolutions and cost are checked. With None
    (code that never sees uploads) an upload id is taken on trust and only the
    checks that need no shape apply (its task is then ``dataset.task`` if the
    request has one, else classification). Raises marshmallow's ValidationError;
    the cost limits report under ``errors["cost"]`` (``work``, ``memory_mb``).
    """
    if not isinstance(payload, dict):
        raise ValidationError({"_schema": ["The body must be a JSON object."]})
    return JobRequestSchema(limits=limits, resolver=resolver).load(payload)


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7396)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


__all__ = ["JobRequestSchema", "ArchitectureSpec", "DatasetResolver", "normalise", "merge_patch", "count_parameters",
           "ACTIVATIONS", "OPTIMIZERS", "SCALES", "ARCHITECTURES", "LOSSES", "MONITORS", "TARGETS", "dataset_shape",
           "MAX_REMEDY_ATTEMPTS"]
