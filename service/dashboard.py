"""GET / and its pages: the dashboard, server-rendered with a little JavaScript.

The pages read the database directly for their first render; every change
after that goes through the public API, as any client's would: the job list
follows ``GET /v1/events`` (one stream for the whole list), a job page follows
its job's ``GET /v1/jobs/{id}/events``, and every action (submit, cancel,
resubmit, delete, log out) is a ``fetch`` to ``/v1`` with the session cookie and
the ``X-CSRF-Token`` header the page was rendered with (service/auth.py).

A page without a valid session (none, expired, or its token revoked: checked on
every request) sends the browser to ``/login``. Every asset is served from
``service/static``: the pages work offline, and their Content-Security-Policy
allows nothing else (no inline script either).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlencode

from flask import Blueprint, Flask, abort, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from core.jobstore import FINISHED, InvalidCursor
from core.plots.spec import COMPARE_METRICS
from core.sweep_results import resource as sweep_resource
from core.sweeps import SweepStore
from service.auth import auth
from service.extensions import parts
from service.owner_events_api import current_cursor, job_card
from service.schemas import STATUSES

bp = Blueprint("dashboard", __name__, template_folder="templates")

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
FALLBACK_EXAMPLE = {"name": "moons", "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [16]},
                    "epochs": 10}
VERDICTS = ["healthy", "training_problem", "overfitting"]
PAGE_SIZE = 20
SCAN_PAGES = 10  # with a verdict filter, read at most this many pages of jobs for one page of matches
COMPARE_CHOICES = 50
MAX_COMPARED = 8
METRICS = list(COMPARE_METRICS)  # what /v1/compare.png draws: accuracy or R², losses, learning rate
SAFE_NEXT = re.compile(r"/(?![/\\])[^\x00-\x20\\\x7f]*")
PLOTS = ["curves", "gradients", "activations", "steps"]
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.before_request
def _signed_in() -> Response | None:
    if request.endpoint == "dashboard.login":
        return None
    session = auth().page_session()
    if session is None:
        return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
    g.principal, g.csrf = session
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another origin (``//host``, ``/\\host``), and no control
    characters or spaces, which browsers drop (``/%09/host`` becomes ``//host``)."""
    if not target or not SAFE_NEXT.fullmatch(target):
        return url_for("dashboard.jobs")
    return target


@bp.get("/login")
def login():
    return render_template("dashboard/login.html", next=_safe_next(request.args.get("next")))


def _matching(status: str | None, verdict: str | None, cursor: str | None) -> tuple[list[dict], str | None]:
    """One page of the owner's jobs, newest first; a verdict filter reads on until the page is full."""
    store, owner = parts().store, g.principal.owner
    found: list[dict] = []
    for _ in range(SCAN_PAGES):
        page = store.list(owner=owner, status=status, limit=PAGE_SIZE, cursor=cursor)
        found += [job for job in page.items if verdict is None or (job["diagnosis"] or {}).get("verdict") == verdict]
        cursor = page.next_cursor
        if cursor is None or len(found) >= PAGE_SIZE:
            break
    return found, cursor


@bp.get("/")
def jobs():
    status = request.args.get("status") or None
    verdict = request.args.get("verdict") or None
    if status not in (None, *STATUSES) or verdict not in (None, *VERDICTS):
        abort(400, "Unknown status or verdict filter.")
    stream_cursor = current_cursor(parts().store, g.principal.owner)  # read before the list: never older
    try:
        rows, next_cursor = _matching(status, verdict, request.args.get("cursor") or None)
    except InvalidCursor:
        abort(400, "The page cursor is not valid; start from the first page.")
    filters = {key: value for key, value in (("status", status), ("verdict", verdict)) if value}
    return render_template("dashboard/jobs.html", cards=[job_card(job) for job in rows], statuses=STATUSES,
                           verdicts=VERDICTS, filters=filters, first_page=not request.args.get("cursor"),
                           next_url=f"/?{urlencode({**filters, 'cursor': next_cursor})}" if next_cursor else None,
                           stream_cursor=stream_cursor.encode())


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    found = parts().store.get(job_id, owner=g.principal.scope)
    if found is None:
        abort(404, f"No job with id {job_id!r}.")
    diagnosis = found["diagnosis"] or {"verdict": None, "findings": []}
    return render_template("dashboard/job.html", job=found, card=job_card(found), diagnosis=diagnosis,
                           finished=found["status"] in FINISHED, plots=PLOTS,
                           request_json=json.dumps(found["request"], indent=2))


def examples() -> dict[str, str]:
    """name -> JSON text as written, from examples/ (absent in a container image: then one small request)."""
    found = {path.stem: path.read_text().strip() for path in sorted(EXAMPLES_DIR.glob("*.json"))
             if _is_json(path.read_text())} if EXAMPLES_DIR.is_dir() else {}
    return found or {"moons": json.dumps(FALLBACK_EXAMPLE, indent=2)}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@bp.get("/submit")
def submit():
    choices = examples()
    chosen = request.args.get("example")
    chosen = chosen if chosen in choices else next(iter(choices))
    return render_template("dashboard/submit.html", examples=choices, chosen=chosen)


@bp.get("/compare")
def compare():
    """Choose jobs (``?jobs=a,b`` or one ``pick`` per job, as the forms send them) and a metric."""
    store = parts().store
    asked = [*(request.args.get("jobs") or "").split(","), *request.args.getlist("pick")]
    picked = [job for job in (store.get(job_id, owner=g.principal.scope) for job_id in dict.fromkeys(asked) if job_id)
              if job is not None][:MAX_COMPARED]
    metric = request.args.get("metric") or METRICS[0]
    if metric not in METRICS:
        abort(400, f"Unknown metric {metric!r}: one of {', '.join(METRICS)}.")
    chosen = [job["id"] for job in picked]
    recent = [job for job in store.list(owner=g.principal.owner, status="succeeded", limit=COMPARE_CHOICES).items
              if job["id"] not in chosen]
    return render_template("dashboard/compare.html", choices=[job_card(job) for job in [*picked, *recent]],
                           chosen=chosen, metric=metric, metrics=METRICS, max_compared=MAX_COMPARED)


@bp.get("/sweeps")
def sweeps():
    """The owner's sweeps, newest first (one page; the API lists the rest)."""
    try:
        page = SweepStore(parts().store.engine).list(owner=g.principal.owner, limit=PAGE_SIZE,
                                                     cursor=request.args.get("cursor") or None)
    except InvalidCursor:
        abort(400, "The page cursor is not valid; start from the first page.")
    return render_template("dashboard/sweeps.html", sweeps=page.items,
                           next_url=f"/sweeps?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None)


@bp.get("/sweeps/<sweep_id>")
def sweep(sweep_id: str):
    """One sweep: the results table and the comparison findings, as GET /v1/sweeps/{id} has them."""
    store = SweepStore(parts().store.engine)
    found = store.get(sweep_id, owner=g.principal.scope)
    if found is None:
        abort(404, f"No sweep with id {sweep_id!r}.")
    shown = sweep_resource({**found, "jobs": store.children(found["id"])})
    paths = list(dict.fromkeys(p for row in shown["results"] for p in row["values"]))
    metrics = list(dict.fromkeys(m for row in shown["results"] for m in row["metrics"]))
    return render_template("dashboard/sweep.html", sweep=shown, paths=paths, metrics=metrics,
                           value_text=lambda v: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))


@bp.context_processor
def _page_context() -> dict:
    return {"principal": g.get("principal"), "csrf": g.get("csrf")}


@bp.errorhandler(400)
@bp.errorhandler(404)
def _error_page(error):
    return render_template("dashboard/error.html", code=error.code, message=error.description), error.code
