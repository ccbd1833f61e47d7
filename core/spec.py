"""The training request: what a valid one is, and its normalised form.

This is the one definition both sides use: the API validates with it, the
worker trusts what it produced. Loading a request returns the *normalised*
request: every component in object form, every default filled in, and no
knob that does not apply. Loading a normalised request gives it back unchanged.
"""

from __future__ import annotations

from typing import Any, Callable

from marshmallow import (RAISE, Schema, ValidationError, fields, post_load,
                         validate, validates_schema)

from core import cost
from core.cost import count_parameters
from core.datasets import BUILTIN_DATASETS, DatasetShape
from core.settings import Limits

_DEFAULT_LIMITS = Limits()  # for the OpenAPI description only; validation takes the limits in force

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


def _strict_bool(**kwargs: Any) -> fields.Boolean:
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


def _int(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, **kwargs)


_LEARNING_RATE_RANGE = validate.Range(min=0, max=100, min_inclusive=False)


class _Strict(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


# --- activations ---------------------------------------------------------

class SigmoidActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("sigmoid"))


class TanhActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("tanh"))


class ReluActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("relu"))


class LeakyReluActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("leaky_relu"))
    negative_slope = fields.Float(load_default=0.01, validate=validate.Range(min=0, max=1, max_inclusive=False),
                                  metadata={"description": "Slope below zero; the gradient is never 0."})


class PreluActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("prelu"),
                         metadata={"description": "Parametric ReLU: one learned slope per unit, initialised at 0.25."})


class EluActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("elu"))


class SeluActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("selu"))


class GeluActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("gelu"))


class SiluActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("silu"))


class MaxoutActivation(_Strict):
    name = fields.String(required=True, validate=validate.Equal("maxout"))
    pieces = _int(load_default=2, validate=validate.Range(min=2, max=8),
                  metadata={"description": "Linear pieces per unit: the layer computes width x pieces "
                                           "outputs and keeps the maximum of each group."})


ACTIVATIONS: dict[str, type[Schema]] = {
    "sigmoid": SigmoidActivation, "tanh": TanhActivation, "relu": ReluActivation,
    "leaky_relu": LeakyReluActivation, "prelu": PreluActivation, "elu": EluActivation,
    "selu": SeluActivation, "gelu": GeluActivation, "silu": SiluActivation, "maxout": MaxoutActivation,
}

# --- optimizers ----------------------------------------------------------


def _learning_rate(default: float) -> fields.Float:
    return fields.Float(load_default=default, validate=_LEARNING_RATE_RANGE,
                        metadata={"description": "Step size, > 0 and <= 100."})


def _betas() -> fields.List:
    return fields.List(fields.Float(validate=validate.Range(min=0, max=1, max_inclusive=False)),
                       load_default=lambda: [0.9, 0.999], validate=validate.Length(equal=2),
                       metadata={"default": [0.9, 0.999]})


class SgdOptimizer(_Strict):
    name = fields.String(required=True, validate=validate.Equal("sgd"))
    learning_rate = _learning_rate(0.01)


class MomentumOptimizer(_Strict):
    name = fields.String(required=True, validate=validate.Equal("momentum"))
    learning_rate = _learning_rate(0.01)
    momentum = fields.Float(load_default=0.9, validate=validate.Range(min=0, max=1, max_inclusive=False))


class NesterovOptimizer(_Strict):
    name = fields.String(required=True, validate=validate.Equal("nesterov"))
    learning_rate = _learning_rate(0.01)
    momentum = fields.Float(load_default=0.9, validate=validate.Range(min=0, max=1, min_inclusive=False,
                                                                       max_inclusive=False))


class AdagradOptimizer(_Strict):
    name = fields.String(required=True, validate=validate.Equal("adagrad"))
    learning_rate = _learning_rate(0.01)


class RmspropOptimizer(_Strict):
    name = fields.String(required=True, validate=validate.Equal("rmsprop"))
    learning_rate = _learning_rate(0.001)
    alpha = fields.Float(load_default=0.99, validate=validate.Range(min=0, max=1, min_inclusive=False,
                                                                     max_inclusive=False),
                         metadata={"description": "Decay of the running mean of squared gradients."})


class AdamOptimizer(_Strict):
    name = fields.String(required=True, validate=validate.Equal("adam"))
    learning_rate = _learning_rate(0.001)
    betas = _betas()
    eps = fields.Float(load_default=1e-8, validate=validate.Range(min=0, max=1, min_inclusive=False))


class AdamwOptimizer(_Strict):
    name = fields.String(required=True, validate=validate.Equal("adamw"))
    learning_rate = _learning_rate(0.001)
    betas = _betas()
    eps = fields.Float(load_default=1e-8, validate=validate.Range(min=0, max=1, min_inclusive=False))
    weight_decay = fields.Float(load_default=0.01, validate=validate.Range(min=0, max=10),
                                metadata={"description": "Decoupled weight decay (not a loss penalty)."})


OPTIMIZERS: dict[str, type[Schema]] = {
    "sgd": SgdOptimizer, "momentum": MomentumOptimizer, "nesterov": NesterovOptimizer,
    "adagrad": AdagradOptimizer, "rmsprop": RmspropOptimizer, "adam": AdamOptimizer, "adamw": AdamwOptimizer,
}


class Component(fields.Field):
    """A shorthand name (``"relu"``) or an object with ``name`` and that component's knobs."""

    def __init__(self, kind: str, variants: dict[str, type[Schema]], **kwargs: Any) -> None:
        self.kind = kind
        self.variants = variants
        refs = [{"$ref": f"#/components/schemas/{cls.__name__}"} for cls in variants.values()]
        metadata = {
            "oneOf": [{"type": "string", "enum": list(variants)}, *refs],
            "description": f"The {kind}: a shorthand name, or an object with `name` and its knobs.",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise ValidationError("Must be a string or an object with a 'name'.")
        name = value.get("name")
        if not isinstance(name, str) or name not in self.variants:
            raise ValidationError({"name": [f"Must be one of: {', '.join(self.variants)}."]})
        return self.variants[name]().load(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


# --- the rest of the request ---------------------------------------------

SCALES = ("none", "standard", "minmax")


class DatasetSpec(_Strict):
    class Meta(_Strict.Meta):
        # For the OpenAPI document (service/openapi_extras.py): what _one_source checks.
        openapi = {"oneOf": [
            {"required": ["name"], "not": {"anyOf": [{"required": ["id"]}, {"required": ["scale"]}]}},
            {"required": ["id"], "not": {"required": ["name"]}},
        ]}

    name = fields.String(validate=validate.OneOf(list(BUILTIN_DATASETS)),
                         metadata={"description": "A built-in dataset (see GET /v1/datasets); give name or id."})
    id = fields.String(metadata={"description": "An uploaded dataset (POST /v1/datasets); give name or id."})
    validation_split = fields.Float(load_default=0.2, validate=validate.Range(min=0, max=0.5, min_inclusive=False),
                                    metadata={"description": "Share of the data held out for validation, "
                                                             "stratified by class."})
    train_samples = _int(load_default=None, allow_none=True, validate=validate.Range(min=1),
                         metadata={"description": "Keep only the first N training samples after the split."})
    split_seed = _int(load_default=0, validate=validate.Range(min=0, max=2**32 - 1),
                      metadata={"description": "Fixes the split; independent of the training seed."})
    scale = fields.String(validate=validate.OneOf(SCALES),
                          metadata={"default": "none", "description": "Uploads only: `standard` ((x - mean) / std) "
                                    "or `minmax` ((x - min) / (max - min)), fitted on the training split; `none` "
                                    "uses the data as given."})

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


class ArchitectureSpec(_Strict):
    hidden_layers = fields.List(
        _int(metadata={"minimum": 1, "maximum": _DEFAULT_LIMITS.max_width}), required=True,
        metadata={"description": "Widths of the hidden layers, input to output. "
                                 f"1-{_DEFAULT_LIMITS.max_hidden_layers} layers of width "
                                 f"1-{_DEFAULT_LIMITS.max_width} (operator limits); total parameters at most "
                                 f"{_DEFAULT_LIMITS.max_parameters:,} by default.",
                  "minItems": 1, "maxItems": _DEFAULT_LIMITS.max_hidden_layers})
    batch_norm = _strict_bool(load_default=False)
    residual = _strict_bool(load_default=False,
                            metadata={"description": "Skip connections between consecutive hidden layers of "
                                                     "equal width."})
    init = fields.String(load_default="default", validate=validate.OneOf(
        ["default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal"]))


class RegularizationSpec(_Strict):
    l1 = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=10),
                      metadata={"description": "Adds l1 * sum|w| over weight matrices to the loss."})
    l2 = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=10),
                      metadata={"description": "Adds l2 / 2 * sum w^2 over weight matrices to the loss."})
    dropout = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=1, max_inclusive=False),
                           metadata={"description": "Drop probability after each hidden activation."})


class EarlyStoppingSpec(_Strict):
    monitor = fields.String(load_default="val_loss", validate=validate.OneOf(["val_loss", "val_accuracy"]))
    min_delta = fields.Float(load_default=0.0, validate=validate.Range(min=0),
                             metadata={"description": "Smallest change that counts as an improvement."})
    restore_best = _strict_bool(load_default=True,
                                metadata={"description": "Return the weights of the best epoch."})


class TargetsSpec(_Strict):
    train_accuracy = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, max=1),
                                  metadata={"description": "Training accuracy that counts as fitting the training "
                                                           "data (recipe step 1). Default: halfway from chance "
                                                           "to perfect; see docs/diagnosis.md."})
    val_accuracy = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, max=1),
                                metadata={"description": "An absolute bar for validation accuracy (recipe step 2). "
                                                         "Default: none; overfitting is judged by the "
                                                         "train/validation gap and the validation loss curve."})


class JobRequestSchema(_Strict):
    """A training request (POST /v1/jobs)."""

    class Meta(_Strict.Meta):
        # For the OpenAPI document (service/openapi_extras.py): the rules across fields of _check_limits.
        openapi = {"allOf": [
            {"anyOf": [{"required": ["patience"], "properties": {"patience": {"type": "integer"}}},
                       {"not": {"required": ["early_stopping"]}},
                       {"properties": {"early_stopping": {"type": "object", "nullable": True, "enum": [None]}}}],
             "description": "early_stopping only with patience set."},
            {"anyOf": [{"properties": {"batch_size": {"minimum": 2}}},
                       {"properties": {"architecture": {"properties": {"batch_norm": {"enum": [False]}}}}}],
             "description": "Batch norm needs batches of at least 2 samples."},
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
    regularization = fields.Nested(RegularizationSpec, load_default=lambda: RegularizationSpec().load({}),
                                   metadata={"default": {"l1": 0.0, "l2": 0.0, "dropout": 0.0}})
    patience = _int(load_default=None, allow_none=True, validate=validate.Range(min=1, max=1000),
                    metadata={"description": "Early stopping: epochs without improvement before stopping; "
                                             "null turns it off."})
    early_stopping = fields.Nested(EarlyStoppingSpec, load_default=None, allow_none=True,
                                   metadata={"description": "Only with patience set."})
    epochs = _int(load_default=20, validate=validate.Range(min=1),
                  metadata={"maximum": _DEFAULT_LIMITS.max_epochs,
                            "description": f"1-{_DEFAULT_LIMITS.max_epochs} (operator limit)."})
    batch_size = _int(load_default=64, validate=validate.Range(min=1),
                      metadata={"maximum": _DEFAULT_LIMITS.max_batch_size,
                                "description": f"1-{_DEFAULT_LIMITS.max_batch_size} (operator limit)."})
    seed = _int(load_default=0, validate=validate.Range(min=0, max=2**32 - 1))
    device = fields.String(load_default="auto", validate=validate.OneOf(["auto", "cpu", "cuda"]),
                           metadata={"description": "cuda sends the job to the gpu queue; auto runs on CUDA "
                                                    "when a GPU worker takes it."})
    diagnose = _strict_bool(load_default=True,
                            metadata={"description": "Probe the training (gradients, activations, step losses) "
                                                     "for the diagnosis; false turns the probes off."})
    targets = fields.Nested(TargetsSpec, load_default=None, allow_none=True,
                            metadata={"description": "Override what counts as good on training and validation "
                                                     "data; null uses the documented defaults."})
    max_runtime_s = _int(load_default=None, validate=validate.Range(min=1),
                         metadata={"maximum": _DEFAULT_LIMITS.max_runtime_s,
                                   "default": _DEFAULT_LIMITS.default_runtime_s,
                                   "description": "Wall-clock budget; default and cap set by the operator "
                                                  f"(default {_DEFAULT_LIMITS.default_runtime_s})."})

    def __init__(self, *, limits: Limits | None = None, resolver: DatasetResolver | None = None,
                 **kwargs: Any) -> None:
        """``limits`` are the operator's, and required to load; ``resolver`` gives an upload's shape.
        Without ``limits`` the schema only describes the request (the OpenAPI document)."""
        super().__init__(**kwargs)
        self.limits = limits
        self.resolver = resolver

    # Every limit and shape check is here, so that the nested schemas need nothing from the outside.
    # This one runs even when other fields failed (their values are then missing from ``data``, or
    # partial for a nested object), so that every bad field is reported at once.
    @validates_schema(skip_on_field_errors=False)
    def _check_limits(self, data: dict, **kwargs: Any) -> None:
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
        width_error = self._width_error(arch.get("hidden_layers"), limits)
        if width_error:
            errors["architecture"] = {"hidden_layers": [width_error]}
        shape = None
        dataset = data.get("dataset")
        if dataset:
            shape = dataset_shape(dataset, self.resolver)
            if shape is None and "id" in dataset and self.resolver is not None:
                errors["dataset"] = {"id": [f"No uploaded dataset with id {dataset['id']!r}."]}
            elif shape is not None and shape.classes > limits.max_classes:
                errors["dataset"] = {"id" if "id" in dataset else "name": [
                    f"The dataset has {shape.classes:,} classes; at most {limits.max_classes:,} are allowed "
                    "(TRAINRX_MAX_CLASSES)."]}
        if errors:
            raise ValidationError(errors)

    # These need the whole request, so they run only once every field is valid.
    @validates_schema
    def _check_cost(self, data: dict, **kwargs: Any) -> None:
        limits = self._limits()
        shape = dataset_shape(data["dataset"], self.resolver)
        if shape is None or shape.classes > limits.max_classes:
            return
        arch = data["architecture"]
        parameters = count_parameters(shape.features, shape.classes, arch["hidden_layers"], data["activation"],
                                      arch["batch_norm"])
        if parameters > limits.max_parameters:
            raise ValidationError({"architecture": {"hidden_layers": [
                f"The network would have {parameters:,} parameters; at most {limits.max_parameters:,} are "
                "allowed."]}})
        over = cost.over_limits(cost.estimate(data, shape), data, limits.max_work, limits.max_job_memory_mb)
        if over:
            raise ValidationError({"cost": over})

    def _limits(self) -> Limits:
        if self.limits is None:
            raise TypeError("JobRequestSchema needs the operator's limits to load a request: "
                            "use core.spec.normalise(payload, limits=..., resolver=...).")
        return self.limits

    @staticmethod
    def _width_error(widths: list[int] | None, limits: Limits) -> str | None:
        if widths is None:
            return None
        if not 1 <= len(widths) <= limits.max_hidden_layers:
            return f"Must have 1 to {limits.max_hidden_layers} layers."
        bad = [(i, w) for i, w in enumerate(widths) if not 1 <= w <= limits.max_width]
        if bad:
            where = ", ".join(f"{w} at position {i}" for i, w in bad[:5])
            return f"Widths must be between 1 and {limits.max_width}; got {where}."
        return None

    @post_load
    def _normalise(self, data: dict, **kwargs: Any) -> dict:
        if data.get("max_runtime_s") is None:
            data["max_runtime_s"] = self._limits().default_runtime_s
        if data.get("patience") is None:
            data.pop("early_stopping", None)
        elif data.get("early_stopping") is None:
            data["early_stopping"] = EarlyStoppingSpec().load({})
        return data


def normalise(payload: Any, *, limits: Limits, resolver: DatasetResolver | None) -> dict:
    """Validate a request against the operator's ``limits`` and return its normalised form.

    ``resolver`` gives an uploaded dataset's shape; with it an unknown upload id
    is refused and an upload job's parameters, classes and cost are checked. With
    None (code that never sees uploads) an upload id is taken on trust and only
    the checks that need no shape apply. Raises marshmallow's ValidationError;
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


__all__ = ["JobRequestSchema", "DatasetResolver", "normalise", "merge_patch", "count_parameters", "ACTIVATIONS",
           "OPTIMIZERS", "SCALES", "dataset_shape"]
