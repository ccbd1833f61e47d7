"""Response schemas of uploaded datasets (all server-written)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.datasets import INPUT_SHAPE_RULE, TASKS


class FeatureRangeSchema(Schema):
    index = fields.Integer()
    name = fields.String(allow_none=True, metadata={"description": "The CSV column; null for .npz uploads."})
    min = fields.Float()
    max = fields.Float()
    mean = fields.Float()
    std = fields.Float()


class TargetSummarySchema(Schema):
    min = fields.Float()
    max = fields.Float()
    mean = fields.Float()
    std = fields.Float()


class UploadedDatasetLinksSchema(Schema):
    self = fields.String()


class UploadedDatasetSchema(Schema):
    id = fields.String(metadata={"description": "Use as `dataset.id` in a training request."})
    name = fields.String(allow_none=True)
    format = fields.String(metadata={"description": "npz or csv: the uploaded format (stored as .npy arrays)."})
    filename = fields.String(allow_none=True)
    task = fields.String(validate=validate.OneOf(TASKS), metadata={
        "description": "As declared at upload (the `task` field): classification (integer labels) or "
                       "regression (numeric targets)."})
    input_shape = fields.List(fields.Integer(), allow_none=True, metadata={
        "description": "As declared at upload: each row seen as [C, L] or [C, H, W] by convolutions; null: no "
                       "spatial shape."})
    rows = fields.Integer()
    features = fields.Integer()
    classes = fields.Integer(metadata={"description": "0 for regression."})
    class_counts = fields.Dict(keys=fields.String(), values=fields.Integer(),
                               metadata={"description": "Rows per class; empty for regression."})
    target = fields.Nested(TargetSummarySchema, allow_none=True,
                           metadata={"description": "Regression: the targets as uploaded; null for classification."})
    feature_ranges = fields.List(fields.Nested(FeatureRangeSchema),
                                 metadata={"description": "Per feature, as uploaded (before any scaling)."})
    upload_bytes = fields.Integer()
    size_bytes = fields.Integer(metadata={"description": "Bytes stored (float32 features, int64 labels)."})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True, metadata={"description": "When a job last started on it."})
    links = fields.Nested(UploadedDatasetLinksSchema)


UPLOAD_REQUEST_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": ".npz with arrays X (rows x features) and y (integer labels 0..k-1, or "
                                    "numeric targets with task=regression), or .csv with a header and a `label` "
                                    "column; see docs/datasets.md."},
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Defaults to the file name."},
            "task": {"type": "string", "enum": list(TASKS), "default": "classification",
                     "description": "classification: `y`/`label` are integer class labels 0..k-1. regression: "
                                    "they are numeric targets (finite, kept as float32). Never guessed from the "
                                    "values."},
            "input_shape": {"type": "string", "example": "[1, 8, 8]",
                            "description": f"JSON, {INPUT_SHAPE_RULE}, whose product is the feature count: how "
                                           "convolutions (`architecture.type: cnn`) see a row (channels first, "
                                           "C order)."},
        },
        "additionalProperties": False,
    }}},
}
