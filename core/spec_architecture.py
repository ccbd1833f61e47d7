"""The network part of a training request: ``architecture``, an MLP or a CNN.

A cnn's blocks are checked here field by field (a bare integer is a block of
that many channels with every knob at its default); what needs the dataset (an
input shape, the spatial size after every stride and pool) and the operator's
limits (block count, channels) is checked by core/spec.py, which sees both.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from core.spec_components import DEFAULT_LIMITS, Strict, strict_bool, strict_int

ARCHITECTURES = ("mlp", "cnn")
POOLS = ("max", "avg")
MAX_KERNEL = 15  # widest convolution kernel: beyond it "same" padding is mostly zeros on these inputs
MAX_STRIDE = 4


class ConvBlockSpec(Strict):
    channels = strict_int(required=True, validate=validate.Range(min=1),
                          metadata={"maximum": DEFAULT_LIMITS.max_width,
                                    "description": f"Output channels, 1-{DEFAULT_LIMITS.max_width} "
                                                   "(TRAINRX_MAX_WIDTH)."})
    kernel = strict_int(load_default=3, validate=[validate.Range(min=1, max=MAX_KERNEL)],
                        metadata={"description": "Kernel size along each spatial axis; odd, so that \"same\" padding "
                                                 "(kernel // 2) keeps the size."})
    stride = strict_int(load_default=1, validate=validate.Range(min=1, max=MAX_STRIDE),
                        metadata={"description": "Divides the spatial size (rounded up)."})
    pool = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(POOLS),
                         metadata={"description": "A 2-wide pool of stride 2 per spatial axis after the block "
                                                  "(halves the size, rounded down); null: none."})

    @validates_schema(skip_on_field_errors=False)
    def _odd_kernel(self, data: dict, **kwargs: Any) -> None:
        if data.get("kernel", 1) % 2 == 0:
            raise ValidationError("Must be odd, so that \"same\" padding (kernel // 2) keeps the spatial size.",
                                  "kernel")


class ConvBlock(fields.Field):
    """A convolution block: an object, or a bare integer (its channels, every other knob at its default)."""

    def __init__(self, **kwargs: Any) -> None:
        block = {"type": "object", "required": ["channels"], "additionalProperties": False,
                 "properties": {"channels": {"type": "integer", "minimum": 1, "maximum": DEFAULT_LIMITS.max_width},
                                "kernel": {"type": "integer", "minimum": 1, "maximum": MAX_KERNEL, "default": 3,
                                           "not": {"multipleOf": 2},
                                           "description": "Odd: \"same\" padding (kernel // 2) keeps the size."},
                                "stride": {"type": "integer", "minimum": 1, "maximum": MAX_STRIDE, "default": 1},
                                "pool": {"type": "string", "enum": [*POOLS, None], "nullable": True,
                                         "default": None, "description": "2 wide, stride 2; null: none."}}}
        metadata = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": DEFAULT_LIMITS.max_width}, block],
                    "description": "A block: conv (\"same\" padding) -> batch norm -> activation -> dropout -> "
                                   "pool, plus its input with residual when it keeps the shape (same channels, "
                                   "stride 1, no pool). A bare integer N is "
                                   "{\"channels\": N, \"kernel\": 3, \"stride\": 1, \"pool\": null}."}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        if isinstance(value, int) and not isinstance(value, bool):
            value = {"channels": value}
        if not isinstance(value, dict):
            raise ValidationError("Must be an integer (the channels) or an object with 'channels'.")
        return ConvBlockSpec().load(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class ArchitectureSpec(Strict):
    class Meta(Strict.Meta):
        # For the OpenAPI document (service/openapi_extras.py): what _fits_type checks.
        openapi = {"oneOf": [
            {"required": ["hidden_layers"], "properties": {"type": {"enum": ["mlp"]}, "hidden_layers": {"minItems": 1}},
             "not": {"anyOf": [{"required": ["conv_layers"]}, {"required": ["global_pool"]}]},
             "description": "mlp (the default): hidden_layers has at least one layer; no convolution keys."},
            {"required": ["type", "conv_layers"], "properties": {"type": {"enum": ["cnn"]}},
             "description": "cnn: conv_layers, then global_pool, then the dense head hidden_layers (may be empty "
                            "or left out)."},
        ]}

    type = fields.String(load_default="mlp", validate=validate.OneOf(ARCHITECTURES), metadata={
        "description": "mlp: dense layers only. cnn: convolution blocks (1-D or 2-D by the rank of "
                       "dataset.input_shape), then a global average pool or a flatten, then the dense head; "
                       "needs a dataset with an input shape."})
    conv_layers = fields.List(ConvBlock(), metadata={
        "description": f"cnn only: 1-{DEFAULT_LIMITS.max_hidden_layers} blocks, input to output "
                       "(TRAINRX_MAX_HIDDEN_LAYERS); the spatial size must stay at least 1 after every stride "
                       "and pool.", "minItems": 1, "maxItems": DEFAULT_LIMITS.max_hidden_layers})
    global_pool = strict_bool(metadata={"default": True, "description": "cnn only: true averages each channel "
                                        "over all positions; false flattens the last block's values."})
    hidden_layers = fields.List(
        strict_int(metadata={"minimum": 1, "maximum": DEFAULT_LIMITS.max_width}),
        metadata={"description": "Widths of the dense hidden layers, input to output. "
                                 f"1-{DEFAULT_LIMITS.max_hidden_layers} layers for an mlp (required), 0-"
                                 f"{DEFAULT_LIMITS.max_hidden_layers} for a cnn's head (default: none), of width "
                                 f"1-{DEFAULT_LIMITS.max_width} (operator limits); total parameters at most "
                                 f"{DEFAULT_LIMITS.max_parameters:,} by default.",
                  "maxItems": DEFAULT_LIMITS.max_hidden_layers})
    batch_norm = strict_bool(load_default=False)
    residual = strict_bool(load_default=False,
                           metadata={"description": "Skip connections around hidden layers (and conv blocks) "
                                                    "whose input and output shapes match."})
    init = fields.String(load_default="default", validate=validate.OneOf(
        ["default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal"]))

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _fits_type(self, data: dict, original: Any, **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data.get("type") == "cnn" and "conv_layers" not in original:
            errors["conv_layers"] = ["Missing data for required field: a cnn needs at least one block."]
        elif data.get("type") == "mlp":
            if "hidden_layers" not in original:
                errors["hidden_layers"] = ["Missing data for required field."]
            for key in ("conv_layers", "global_pool"):
                if key in original:
                    errors[key] = ["Only applies when architecture.type is cnn."]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _normalise_type(self, data: dict, **kwargs: Any) -> dict:
        ordered = {"type": data.pop("type")}
        if ordered["type"] == "cnn":
            ordered["conv_layers"] = data.pop("conv_layers")
            ordered["global_pool"] = data.pop("global_pool", True)
            ordered["hidden_layers"] = data.pop("hidden_layers", [])  # the dense head: none unless given
        return {**ordered, **data}


