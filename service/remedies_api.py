"""/v1/jobs/{id}/remedies: verified remedies, run and judged by core/remedies.py.

These routes join the jobs blueprint. The POST opens the remedy and starts its first children
here (creating a child is core/child_jobs.py, torch-free); workers move it on as children end.
"""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import abort

from core import remedies
from core.events import publish_status
from core.remedy_store import RemedyStore
from service.auth import current_principal
from service.datasets_api import uploads
from service.extensions import parts
from service.jobs_api import blp, load_job
from service.remedy_schemas import RemedyArgsSchema, RemedySchema


def _context() -> remedies.RemedyContext:
    p = parts()
    upload_store = uploads()
    return remedies.RemedyContext(
        store=p.store, remedies=RemedyStore(p.store.engine), celery=p.celery, limits=p.settings.limits,
        max_active_jobs=p.settings.quotas.max_active_jobs_per_owner,
        default_parallel=p.settings.quotas.max_remedy_parallel,
        resolver_for=lambda owner: (lambda dataset_id: upload_store.shape(dataset_id, owner=owner)),
        publish_status=lambda job: publish_status(p.redis, job))


def resource(remedy: dict) -> dict:
    """The remedy as the API shows it: each started attempt with its child's live status."""
    children = parts().store.remedy_children(remedy["id"])
    attempts = []
    for attempt in remedy["attempts"]:
        status = attempt["status"]
        if status == remedies.STARTED:
            child = children.get(attempt["job_id"])
            status = child["status"] if child is not None else remedies.PENDING
        attempts.append({**attempt, "status": status, "before": remedy["before"]})
    options = remedy["options"]
    return {**remedy, "attempts": attempts, "parallel": options.get("parallel"),
            "stop_when_fixed": options.get("stop_when_fixed")}


@blp.route("/<job_id>/remedies")
class Remedies(MethodView):
    @blp.arguments(RemedyArgsSchema)
    @blp.response(202, RemedySchema, description="Opened: the first children are queued.",
                  headers={"Location": {"description": "The remedy's URL", "schema": {"type": "string"}}})
    @blp.alt_response(200, schema=RemedySchema, description="The job already has a remedy: this one.")
    @blp.alt_response(409, description="The job is not finished, is healthy, ran with `diagnose: false`, has no "
                                       "verdict, or its diagnosis suggests no patch that could count as a fix.")
    @blp.alt_response(422, description="A bad body (`parallel` above TRAINRX_REMEDY_PARALLEL, `max_attempts` "
                                       "outside 1-5).")
    def post(self, args: dict, job_id: str):
        """Verify the diagnosis' remedies: re-train with its top patches and judge each child.

        Safe to repeat: a repeated POST answers 200 with the remedy the first one opened.
        Its children are ordinary jobs of yours (`links.parent` names this job), counted in
        your active-jobs quota; when it is full the remedy waits for a free slot."""
        parent = load_job(job_id)
        cap = parts().settings.quotas.max_remedy_parallel
        parallel = args["parallel"] if args["parallel"] is not None else cap
        if parallel > cap:
            abort(422, message="The request is invalid.",
                  errors={"parallel": [f"Must be at most {cap} (TRAINRX_REMEDY_PARALLEL)."]})
        try:
            remedy, created = remedies.open_remedy(_context(), parent, max_attempts=args["max_attempts"],
                                                   parallel=parallel, stop_when_fixed=args["stop_when_fixed"])
        except remedies.RemedyRefused as exc:
            abort(409, message=str(exc))
        return resource(remedy), (202 if created else 200), {"Location": url_for("jobs.Remedies", job_id=job_id)}

    @blp.response(200, RemedySchema)
    @blp.alt_response(404, description="No such job, or the job has no remedy.")
    def get(self, job_id: str):
        """The job's verified remedy, live: attempts, their children's outcomes, the best fix."""
        load_job(job_id)
        remedy = RemedyStore(parts().store.engine).for_job(job_id, owner=current_principal().scope)
        if remedy is None:
            abort(404, message=f"Job {job_id} has no remedy; POST /v1/jobs/{job_id}/remedies starts one.")
        return resource(remedy)
