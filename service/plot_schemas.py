"""Query arguments of the plot endpoints: the picture's size (capped) and, for a
comparison, which jobs and metric."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from core.plots import spec as P


def _bounded(low: int, high: int, default: int, what: str) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(min=low, max=high),
                          metadata={"description": f"{what} ({low} to {high}; default {default})."})


class PlotArgsSchema(Schema):
    width = _bounded(P.MIN_WIDTH, P.MAX_WIDTH, P.DEFAULT_WIDTH, "Width in pixels")
    height = _bounded(P.MIN_HEIGHT, P.MAX_HEIGHT, P.DEFAULT_HEIGHT, "Height in pixels")
    dpi = _bounded(P.MIN_DPI, P.MAX_DPI, P.DEFAULT_DPI, "Dots per inch: the text's size relative to the picture. "
                   f"width / dpi must be at least {P.MIN_WIDTH_IN:g} and height / dpi at least {P.MIN_HEIGHT_IN:g} "
                   "(inches), or the text would not fit")

    @validates_schema
    def _text_fits(self, data: dict, **kwargs) -> None:
        width, height, dpi = data.get("width"), data.get("height"), data.get("dpi")
        if None in (width, height, dpi):
            return
        if width / dpi < P.MIN_WIDTH_IN or height / dpi < P.MIN_HEIGHT_IN:
            raise ValidationError(f"At {dpi} dpi a {width}x{height} picture is {width / dpi:.2g}x{height / dpi:.2g} "
                                  f"inches, too small for its text (at least {P.MIN_WIDTH_IN:g}x{P.MIN_HEIGHT_IN:g}): "
                                  "lower dpi or raise width and height.", "dpi")


def job_ids(raw: str) -> list[str]:
    """``a,b,c`` -> the ids in order, each once."""
    return list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


class CompareArgsSchema(PlotArgsSchema):
    jobs = fields.String(required=True, metadata={
        "description": f"Comma-separated job ids, 1 to {P.MAX_COMPARE_JOBS}, e.g. `?jobs=ID1,ID2`."})
    metric = fields.String(load_default=P.DEFAULT_COMPARE_METRIC, validate=validate.OneOf(P.COMPARE_METRICS),
                           metadata={"description": "The per-epoch metric overlaid."})

    @validates("jobs")
    def _count(self, value: str, **kwargs) -> None:
        count = len(job_ids(value))
        if count == 0:
            raise ValidationError("Name at least one job id.")
        if count > P.MAX_COMPARE_JOBS:
            raise ValidationError(f"At most {P.MAX_COMPARE_JOBS} jobs can be compared at once; {count} were named.")
