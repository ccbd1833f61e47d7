"""The verified-remedy resource (``/v1/jobs/{id}/remedies``) and its POST body."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from core.spec import MAX_REMEDY_ATTEMPTS
from core.spec_components import strict_bool, strict_int

REMEDY_STATUSES = ["running", "done"]
ATTEMPT_STATUSES = ["pending", "queued", "running", "succeeded", "failed", "cancelled", "invalid", "skipped"]


class RemedyArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    max_attempts = strict_int(load_default=3, validate=validate.Range(min=1, max=MAX_REMEDY_ATTEMPTS),
                                  metadata={"description": "How many of the diagnosis' patches to try, in its "
                                                           "order (deduplicated)."})
    parallel = strict_int(load_default=None, allow_none=True, validate=validate.Range(min=1), metadata={
        "description": "Children that train at once; default and cap TRAINRX_REMEDY_PARALLEL (2)."})
    stop_when_fixed = strict_bool(load_default=True, metadata={
        "description": "Once a child fixed the problem, cancel the children still queued or running and try "
                       "no more."})


class OutcomeSchema(Schema):
    """What a finished job reached at its returned epoch (core/remedy_outcome.outcome)."""

    verdict = fields.String(allow_none=True)
    train_loss = fields.Float(allow_none=True)
    val_loss = fields.Float(allow_none=True)
    train_accuracy = fields.Float(allow_none=True)
    val_accuracy = fields.Float(allow_none=True)
    train_r2 = fields.Float(allow_none=True, metadata={"description": "Regression only."})
    val_r2 = fields.Float(allow_none=True, metadata={"description": "Regression only."})
    returned_epoch = fields.Integer(allow_none=True)


class ExpectSchema(Schema):
    metric = fields.String()
    op = fields.String()
    value = fields.Float()
    within_epochs = fields.Integer(allow_none=True)


class RemedyAttemptSchema(Schema):
    patch = fields.Dict(metadata={"description": "The diagnosis' suggested JSON merge patch."})
    why = fields.String(allow_none=True)
    finding = fields.String(allow_none=True, metadata={"description": "The finding that suggested it."})
    expect = fields.Nested(ExpectSchema, allow_none=True,
                           metadata={"description": "What the suggestion said it would do, when it said."})
    job_id = fields.String(allow_none=True, metadata={"description": "The child job; null until it starts."})
    status = fields.String(validate=validate.OneOf(ATTEMPT_STATUSES), metadata={
        "description": "pending (waiting for a slot), the child's status, invalid (the patched request does not "
                       "validate) or skipped (another attempt fixed it first)."})
    before = fields.Nested(OutcomeSchema, metadata={"description": "The parent's outcome."})
    after = fields.Nested(OutcomeSchema, allow_none=True,
                          metadata={"description": "The child's outcome; null until it finishes."})
    fixed = fields.Boolean(allow_none=True, metadata={
        "description": "The verdict moved forward in the recipe and the finding's metric improved; null until "
                       "judged (a cancelled child is not judged)."})
    expectation_met = fields.Boolean(allow_none=True,
                                     metadata={"description": "Whether the child met `expect`; null without one."})
    error = fields.Dict(allow_none=True, metadata={"description": "Why an attempt is invalid."})


class RemedyBestSchema(Schema):
    job_id = fields.String()
    patch = fields.Dict()
    request = fields.Dict(metadata={"description": "The child's full normalised request: ready to submit."})


class RemedySchema(Schema):
    id = fields.String()
    job_id = fields.String(metadata={"description": "The parent job."})
    status = fields.String(validate=validate.OneOf(REMEDY_STATUSES))
    max_attempts = fields.Integer()
    parallel = fields.Integer()
    stop_when_fixed = fields.Boolean()
    attempts = fields.List(fields.Nested(RemedyAttemptSchema))
    best = fields.Nested(RemedyBestSchema, allow_none=True, metadata={
        "description": "The fixed attempt with the best target metric (ties: the earliest); null when none "
                       "fixed it."})
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
