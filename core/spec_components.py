"""The pieces of a training request that come in named variants (activations and
optimizers: a shorthand name or an object with that variant's knobs), and the
strict base every request schema shares. core/spec.py assembles the request.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from core.settings import Limits

DEFAULT_LIMITS = Limits()  # for the OpenAPI description only; validation takes the limits in force


def strict_bool(**kwargs: Any) -> fields.Boolean:
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


def strict_int(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, **kwargs)


_LEARNING_RATE_RANGE = validate.Range(min=0, max=100, min_inclusive=False)


class Strict(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


# --- activations ---------------------------------------------------------

class SigmoidActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("sigmoid"))


class TanhActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("tanh"))


class ReluActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("relu"))


class LeakyReluActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("leaky_relu"))
    negative_slope = fields.Float(load_default=0.01, validate=validate.Range(min=0, max=1, max_inclusive=False),
                                  metadata={"description": "Slope below zero; the gradient is never 0."})


class PreluActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("prelu"),
                         metadata={"description": "Parametric ReLU: one learned slope per unit, initialised at 0.25."})


class EluActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("elu"))


class SeluActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("selu"))


class GeluActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("gelu"))


class SiluActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("silu"))


class MaxoutActivation(Strict):
    name = fields.String(required=True, validate=validate.Equal("maxout"))
    pieces = strict_int(load_default=2, validate=validate.Range(min=2, max=8),
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


class SgdOptimizer(Strict):
    name = fields.String(required=True, validate=validate.Equal("sgd"))
    learning_rate = _learning_rate(0.01)


class MomentumOptimizer(Strict):
    name = fields.String(required=True, validate=validate.Equal("momentum"))
    learning_rate = _learning_rate(0.01)
    momentum = fields.Float(load_default=0.9, validate=validate.Range(min=0, max=1, max_inclusive=False))


class NesterovOptimizer(Strict):
    name = fields.String(required=True, validate=validate.Equal("nesterov"))
    learning_rate = _learning_rate(0.01)
    momentum = fields.Float(load_default=0.9, validate=validate.Range(min=0, max=1, min_inclusive=False,
                                                                       max_inclusive=False))


class AdagradOptimizer(Strict):
    name = fields.String(required=True, validate=validate.Equal("adagrad"))
    learning_rate = _learning_rate(0.01)


class RmspropOptimizer(Strict):
    name = fields.String(required=True, validate=validate.Equal("rmsprop"))
    learning_rate = _learning_rate(0.001)
    alpha = fields.Float(load_default=0.99, validate=validate.Range(min=0, max=1, min_inclusive=False,
                                                                     max_inclusive=False),
                         metadata={"description": "Decay of the running mean of squared gradients."})


class AdamOptimizer(Strict):
    name = fields.String(required=True, validate=validate.Equal("adam"))
    learning_rate = _learning_rate(0.001)
    betas = _betas()
    eps = fields.Float(load_default=1e-8, validate=validate.Range(min=0, max=1, min_inclusive=False))


class AdamwOptimizer(Strict):
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


