"""Response schemas of uploaded datasets (all server-written)."""

from __future__ import annotations

from marshmallow import Schema, fields


class FeatureRangeSchema(Schema):
    index = fields.Integer()
    name = fields.String(allow_none=True, metadata={"description": "The CSV column; null for .npz uploads."})
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
    rows = fields.Integer()
    features = fields.Integer()
    classes = fields.Integer()
    class_counts = fields.Dict(keys=fields.String(), values=fields.Integer())
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
                     "description": ".npz with arrays X (rows x features) and y (integer labels 0..k-1), or .csv "
                                    "with a header and a `label` column; see docs/datasets.md."},
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Defaults to the file name."},
        },
        "additionalProperties": False,
    }}},
}
