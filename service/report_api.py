"""``GET /v1/jobs/{id}/report``: one self-contained HTML page per job.

Everything is inside the page: the plots as ``data:`` URIs, the CSS inline, no
external URL (a saved report opens offline, e.g. as a CI artifact). It reads
without JavaScript: the request, status and timings, the plots, the verdict and
each finding with its evidence, explanation and suggested patches, each with
the full patched request to copy. A small inline script adds copy buttons and,
when the page was asked for with the browser session cookie, a "resubmit"
button per patch (``POST /v1/jobs/{id}/resubmit`` with the CSRF header, whose
value the page carries in ``<meta name="csrf-token">`` for that session only).

Job names and every other value a user chose are escaped by Jinja's autoescape;
a Content-Security-Policy allows only the page's own inline style and script
(by nonce), ``data:`` images and requests back to this API.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timezone
from typing import Any

from flask import Response, render_template, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from core import __version__
from core.artifacts import MODEL_KEY, ONNX_KEY, WEIGHTS_KEY
from core.jobstore import FINISHED
from core.plots import spec as P
from core.spec import merge_patch
from service.auth import auth, csrf_token, current_principal
from service.jobs_api import load_job
from service.plots_api import job_plots
from service.schemas import JobSchema

blp = Blueprint("reports", __name__, url_prefix="/v1/jobs", description="A report per job",
                template_folder="report_templates")

REPORT_SIZE = P.Size(width=1100, height=520, dpi=100)
PLOT_CAPTIONS = {
    "curves": "Loss and {score} per epoch: training and validation, the best epoch and an early stop marked.",
    "gradients": "Gradient norm per layer, input to output, on a log scale: a vanishing gradient shows as the "
                 "input-side layers orders of magnitude below the output side.",
    "activations": "Dead (never active) and saturated units per hidden layer, and the activation variance "
                   "through the depth.",
    "steps": "Sampled training steps: batch loss and total gradient norm (an explosion shows inside an epoch).",
}
VERDICTS = {
    "healthy": "The network is good on its training data and on its validation data.",
    "training_problem": "The network is not good on its own training data: fix the training first (the "
                        "recipe's step 1); validation results mean little until then.",
    "overfitting": "The network is good on its training data but worse on validation data: overfitting "
                   "(the recipe's step 2).",
}
DOWNLOADS = ((WEIGHTS_KEY, "jobs.Weights", "Weights (safetensors)"), (MODEL_KEY, "jobs.Model", "Model (.pt2)"),
             (ONNX_KEY, "jobs.ModelOnnx", "Model (ONNX)"))


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def number(value: Any) -> str:
    """Evidence values as a person reads them: 4 significant digits, small and large ones in e-notation."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "—"}[value]
    if isinstance(value, float):
        return f"{value:.3e}" if value != 0 and not 1e-3 <= abs(value) < 1e5 else f"{value:.4g}"
    return str(value)


def when(value: str | None) -> str:
    """An ISO timestamp from the job resource, as a person reads it (UTC, to the second)."""
    if not value:
        return "—"
    return datetime.fromisoformat(value).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _findings(job: dict) -> list[dict]:
    out = []
    for item in (job.get("diagnosis") or {}).get("findings") or []:
        suggestions = [{"why": s.get("why", ""), "patch": json.dumps(s["patch"], ensure_ascii=False),
                        "patch_body": json.dumps({"patch": s["patch"]}),
                        "patched": pretty(merge_patch(job["request"], s["patch"]))}
                       for s in item.get("suggestions") or []]
        out.append({**item, "suggestions": suggestions})
    return out


def _downloads(job: dict) -> list[dict]:
    """Links back to this API (absolute, so a saved report still reaches it)."""
    artifacts = job.get("artifacts") or {}
    return [{"label": label, "href": url_for(endpoint, job_id=job["id"], _external=True)}
            for key, endpoint, label in DOWNLOADS if artifacts.get(key)]


@blp.route("/<job_id>/report")
class Report(MethodView):
    @blp.response(200, {"type": "string"}, content_type="text/html",
                  description="A self-contained page (plots inlined, no external URL), readable offline and "
                              "without JavaScript: the request, status and timings, the plots, the verdict and "
                              "each finding with its evidence, explanation and suggested patches (each with the "
                              "patched request to copy, and a resubmit button for the browser session), and "
                              "download links. A running job's report shows it so far.")
    @blp.alt_response(404, description="No such job.")
    def get(self, job_id: str):
        """The job's report, as one HTML page."""
        job = load_job(job_id)
        pngs = job_plots(job, list(P.PLOT_NAMES), REPORT_SIZE)
        score = "R²" if job["request"]["dataset"].get("task") == "regression" else "accuracy"
        plots = [{"name": name, "caption": PLOT_CAPTIONS[name].format(score=score),
                  "src": "data:image/png;base64," + base64.b64encode(png).decode()}
                 for name, png in zip(P.PLOT_NAMES, pngs)]
        principal = current_principal()
        nonce = secrets.token_urlsafe(16)
        diagnosis = job.get("diagnosis") or {}
        html = render_template(
            "report/job.html", job=JobSchema().dump(job), request_json=pretty(job["request"]), plots=plots,
            verdict=diagnosis.get("verdict"), verdict_text=VERDICTS.get(diagnosis.get("verdict"), ""),
            findings=_findings(job), final=job["status"] in FINISHED, downloads=_downloads(job),
            resubmit_url=url_for("jobs.Resubmit", job_id=job["id"]), nonce=nonce, number=number, when=when,
            plot_width=REPORT_SIZE.width, plot_height=REPORT_SIZE.height,
            csrf=csrf_token(auth().secret, principal.token_id) if principal.via == "session" else None,
            generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), version=__version__)
        response = Response(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; img-src data:; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
        response.headers["Cache-Control"] = "private, no-store"  # it may carry the session's CSRF token
        return response
