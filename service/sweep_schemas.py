"""Response schemas of /v1/sweeps (dump only; the request body is core.sweep_plan.SweepRequestSchema)."""

from __future__ import annotations

from flask import url_for
from marshmallow import Schema, fields, validate

from core.sweeps import SWEEP_STATUSES
from service.schemas import FindingSchema, OwnerArgsSchema


class StatsSchema(Schema):
    mean = fields.Float(allow_none=True)
    std = fields.Float(allow_none=True, metadata={"description": "Sample standard deviation over seeds (0 for one)."})
    n = fields.Integer(metadata={"description": "Finished (succeeded) children it is over."})


class SweepCountsSchema(Schema):
    pending = fields.Integer(metadata={"description": "Not created yet (children are created lazily)."})
    queued = fields.Integer()
    running = fields.Integer()
    succeeded = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()


class SweepChildSchema(Schema):
    index = fields.Integer()
    job_id = fields.String(allow_none=True, metadata={"description": "null: not created yet (or deleted)."})
    values = fields.Dict(metadata={"description": "The varied values (dotted path -> value)."})
    seed = fields.Integer()
    status = fields.String(metadata={"description": "The job's status; pending (not created yet), not_created "
                                                    "(the sweep ended first) or deleted."})


class SweepResultSchema(Schema):
    combination = fields.Integer()
    values = fields.Dict(metadata={"description": "Grid and random values of this combination (not the seed)."})
    seeds = fields.List(fields.Integer())
    job_ids = fields.List(fields.String())
    finished = fields.Integer(metadata={"description": "Children that succeeded: the statistics are over these."})
    metrics = fields.Dict(keys=fields.String(), values=fields.Nested(StatsSchema), metadata={
        "description": "train_loss, val_loss and train/val accuracy (R² for regression) at each child's returned "
                       "epoch, from its summary."})
    verdicts = fields.Dict(keys=fields.String(), values=fields.Integer())
    verdict = fields.String(allow_none=True, metadata={"description": "The most common verdict."})
    best_epoch = fields.Nested(StatsSchema)
    time_s = fields.Nested(StatsSchema, metadata={"description": "Training time."})


class ComparisonFindingSchema(FindingSchema):
    combinations = fields.List(fields.Dict(), metadata={"description": "The combinations it compares."})


class ComparisonSchema(Schema):
    findings = fields.List(fields.Nested(ComparisonFindingSchema))


class SweepLinksSchema(Schema):
    self = fields.Function(lambda row: url_for("sweeps.Sweep", sweep_id=row["id"]), metadata={"type": "string"})
    cancel = fields.Function(lambda row: url_for("sweeps.Cancel", sweep_id=row["id"]), metadata={"type": "string"})


class SweepSummarySchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    owner = fields.String()
    status = fields.String(validate=validate.OneOf(SWEEP_STATUSES))
    size = fields.Integer(metadata={"description": "Children in all (combinations x seeds)."})
    max_parallel = fields.Integer()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    spec = fields.Dict(metadata={"description": "The body, with its defaults."})
    links = fields.Function(lambda row: SweepLinksSchema().dump(row), metadata={"type": "object"})


class SweepSchema(SweepSummarySchema):
    counts = fields.Nested(SweepCountsSchema)
    children = fields.List(fields.Nested(SweepChildSchema))
    results = fields.List(fields.Nested(SweepResultSchema), metadata={"description": "One row per combination."})
    comparison = fields.Nested(ComparisonSchema)


class SweepListArgsSchema(OwnerArgsSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String()


class SweepListSchema(Schema):
    items = fields.List(fields.Nested(SweepSummarySchema))
    next_cursor = fields.String(allow_none=True)
