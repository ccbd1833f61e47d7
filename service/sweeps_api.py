"""/v1/sweeps: run one request over a grid of values, random draws and seeds, as child jobs.

The plan (core/sweep_plan.py) is built and every combination validated here, before anything
is queued; the first ``max_parallel`` children are created here too, and the workers create
the next ones as children end (core/sweeps.py, registered in workers/parents.py).
"""

from __future__ import annotations

from flask import request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from core.events import publish_status
from core.jobstore import InvalidCursor
from core.sweep_plan import SweepInvalid, SweepRequestSchema, load_body, plan
from core.sweep_results import resource
from core.sweeps import IdempotencyConflict, SweepStore
from service.auth import current_principal, listed_owner
from service.extensions import parts
from service.jobs_api import IDEMPOTENCY_HEADER, IDEMPOTENCY_PARAMETER, json_body, upload_resolver
from service.sweep_schemas import SweepListArgsSchema, SweepListSchema, SweepSchema

blp = Blueprint("sweeps", __name__, url_prefix="/v1/sweeps",
                description="Sweeps: one request over a grid, random draws and seeds, with a results table")


def store() -> SweepStore:
    return SweepStore(parts().store.engine)


def load_sweep(sweep_id: str) -> dict:
    """The caller's sweep (any, for admins) with its children, or 404."""
    sweep = store().get(sweep_id, owner=current_principal().scope)
    if sweep is None:
        abort(404, message=f"No sweep with id {sweep_id!r}.")
    return {**sweep, "jobs": store().children(sweep["id"])}


@blp.route("")
class Sweeps(MethodView):
    # Validated in the view (every combination, with the limits and the caller's uploads).
    @blp.doc(requestBody={"required": True, "content": {"application/json": {"schema": SweepRequestSchema}}},
             parameters=[IDEMPOTENCY_PARAMETER])
    @blp.response(202, SweepSchema, description="Accepted: the first `max_parallel` children are queued.",
                  headers={"Location": {"description": "The sweep's URL", "schema": {"type": "string"}}})
    @blp.alt_response(200, schema=SweepSchema, description="An earlier POST with the same Idempotency-Key and "
                                                           "body.")
    @blp.alt_response(409, description="The Idempotency-Key was used with a different body.")
    @blp.alt_response(422, description="The body, a path, the size cap or a combination is invalid; the message "
                                       "names the combination (its values) and the field.")
    @blp.alt_response(415, description="The body is not JSON.")
    def post(self):
        """Start a sweep.

        Combinations are the grid's cartesian product crossed with `random.n` draws; each runs
        once per seed. Children are normal jobs of yours, created lazily, at most `max_parallel`
        queued or running at a time and within your active-jobs cap. Send an `Idempotency-Key`
        header to make the POST safe to retry."""
        p = parts()
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and not 1 <= len(key) <= 255:
            abort(400, message=f"{IDEMPOTENCY_HEADER} must be 1 to 255 characters.")
        try:
            body = load_body(json_body())
            children = plan(body, limits=p.settings.limits, resolver=upload_resolver(),
                            max_size=p.settings.quotas.max_sweep_size)
        except SweepInvalid as exc:
            abort(422, message=exc.message, errors=exc.errors)
        try:
            sweep, created = store().create(current_principal().owner, body, children, idempotency_key=key)
        except IdempotencyConflict as exc:
            abort(409, message=str(exc))
        if created:
            store().advance(sweep["id"], p.settings, p.celery)
        return (resource(load_sweep(sweep["id"])), 202 if created else 200,
                {"Location": url_for("sweeps.Sweep", sweep_id=sweep["id"])})

    @blp.arguments(SweepListArgsSchema, location="query")
    @blp.response(200, SweepListSchema)
    def get(self, args: dict):
        """List sweeps, newest first (without their children and results)."""
        try:
            page = store().list(owner=listed_owner(current_principal(), args.get("owner")), limit=args["limit"],
                                cursor=args.get("cursor"))
        except InvalidCursor as exc:
            abort(422, message="The request is invalid.", errors={"cursor": [str(exc)]})
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/<sweep_id>")
class Sweep(MethodView):
    @blp.response(200, SweepSchema)
    @blp.alt_response(404, description="No such sweep.")
    def get(self, sweep_id: str):
        """Read a sweep: its children, the results table and the comparison diagnosis."""
        return resource(load_sweep(sweep_id))


@blp.route("/<sweep_id>/cancel")
class Cancel(MethodView):
    @blp.response(202, SweepSchema, description="Cancelled: no more children; every unfinished one is cancelled "
                                                "(a running one stops at its next step). Idempotent.")
    @blp.alt_response(404, description="No such sweep.")
    def post(self, sweep_id: str):
        """Cancel a sweep and its unfinished children."""
        p = parts()
        unfinished = store().cancel(sweep_id, owner=current_principal().scope)
        if unfinished is None:
            abort(404, message=f"No sweep with id {sweep_id!r}.")
        for job_id in unfinished:  # the jobs' own cancel path, as POST /v1/jobs/{id}/cancel
            if p.store.request_cancel(job_id, owner=None) is not None:
                publish_status(p.redis, p.store.get(job_id, owner=None))
        return resource(load_sweep(sweep_id))
