"""Pictures of jobs: ``GET /v1/jobs/{id}/plots/{name}.png`` and ``GET /v1/compare.png``.

The API gathers the numbers (short database reads) and the renderer's child
processes draw them (core/plots/pool.py), so a render never holds the event
loop. A finished job's PNGs are stored once drawn, in its artifact
directory (``plot-v<version>-<name>-<W>x<H>@<DPI>.png``), and deleted with it; a
running job's are drawn afresh on every request.
"""

from __future__ import annotations

import logging

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from core.jobstore import FINISHED
from core.plots import spec as P
from core.plots.pool import RenderersBusy, RenderFailed, render_compare, render_job_plots
from service.extensions import parts
from service.jobs_api import evenly, load_job, sampled_steps, thin_steps
from service.plot_schemas import CompareArgsSchema, PlotArgsSchema, job_ids

log = logging.getLogger("trainrx.plots")

blp = Blueprint("plots", __name__, url_prefix="/v1", description="Plots of jobs, and several jobs compared")

# Bump when the pictures change: stored PNGs of an older version are then drawn anew.
PLOTS_VERSION = "1"
CACHE_PREFIX = f"plot-v{PLOTS_VERSION}-"
# Sizes stored per job: the common ones (a report's, a dashboard's) are; a caller asking
# for ever new sizes gets them drawn, not stored, so no one can fill the disk this way.
MAX_CACHED_PER_JOB = 24
RENDERERS_BUSY_RETRY_AFTER_S = 5
PNG = {"format": "binary", "type": "string"}


def job_data(job: dict) -> P.JobData:
    """What the plots of ``job`` read, from the job store (a long run thinned to
    MAX_POINTS epochs and MAX_STEP_POINTS sampled steps)."""
    store = parts().store
    steps = sampled_steps(job)
    return P.JobData(title=job.get("name") or f"job {job['id'][:8]}", status=job["status"],
                     rows=evenly(store.epochs(job["id"]), P.MAX_POINTS),
                     steps=thin_steps(steps, P.MAX_STEP_POINTS) if steps is not None else None,
                     initial=job.get("initial_probes"), summary=job.get("summary"), diagnosis=job.get("diagnosis"),
                     epochs_requested=(job.get("request") or {}).get("epochs"))


def _cache_name(name: str, size: P.Size) -> str:
    return f"{CACHE_PREFIX}{name}-{size.key}.png"


def _storable(job_id: str) -> bool:
    """Stored only beside the job's own files (a job deleted meanwhile has none, and a
    PNG written there would outlive it), and only up to MAX_CACHED_PER_JOB sizes."""
    names = parts().artifacts.names(job_id)
    return bool(names) and sum(1 for name in names if name.startswith(CACHE_PREFIX)) < MAX_CACHED_PER_JOB


def job_plots(job: dict, names: list[str], size: P.Size) -> list[bytes]:
    """The job's PNGs for ``names``: stored ones for a finished job, the rest drawn
    (in one renderer call) and, for a finished job, stored."""
    artifacts, finished = parts().artifacts, job["status"] in FINISHED
    found = {name: artifacts.read_bytes(job["id"], _cache_name(name, size)) for name in names} if finished else {}
    missing = [name for name in names if not found.get(name)]
    if missing:
        for name, png in zip(missing, _render(lambda: render_job_plots(missing, job_data(job), size))):
            found[name] = png
            if finished:
                _cache(job["id"], _cache_name(name, size), png)
    return [found[name] for name in names]


def _cache(job_id: str, name: str, png: bytes) -> None:
    """Keep a drawn PNG for next time; the cache is an optimisation, so a failed write is a
    warning and the request still gets its PNG."""
    try:
        if _storable(job_id):
            parts().artifacts.write_bytes(job_id, name, png)
    except Exception:  # noqa: BLE001 - any storage failure; the PNG is already drawn
        log.warning("could not cache plot %s of job %s", name, job_id, exc_info=True)


def _render(draw):
    try:
        return draw()
    except RenderersBusy:
        abort(503, message="Every plot renderer is busy; retry shortly.",
              headers={"Retry-After": str(RENDERERS_BUSY_RETRY_AFTER_S)})
    except RenderFailed as exc:
        log.error("rendering failed: %s", exc)
        abort(500)


def png_response(data: bytes, finished: bool) -> Response:
    response = Response(data, mimetype="image/png")
    # A finished job's pictures never change; a running job's change every epoch.
    response.headers["Cache-Control"] = "private, max-age=86400" if finished else "no-store"
    return response


def _size(args: dict) -> P.Size:
    return P.Size(width=args["width"], height=args["height"], dpi=args["dpi"])


@blp.route("/jobs/<job_id>/plots/<name>.png")
class JobPlot(MethodView):
    @blp.arguments(PlotArgsSchema, location="query")
    @blp.response(200, PNG, content_type="image/png",
                  description="`curves`: loss and accuracy (or R²) per epoch, best epoch and early stop marked. "
                              "`gradients`: gradient norm per layer, log scale, input to output. `activations`: "
                              "dead-unit and saturation fractions per layer, activation variance. `steps`: the "
                              "sampled per-step loss and gradient norm. Each finding's evidence is drawn where it "
                              "applies (the epoch first seen, the threshold line). A finished job's PNG is drawn "
                              "once and stored; a running job's is drawn afresh.")
    @blp.alt_response(404, description="No such job, or no plot of that name.")
    @blp.alt_response(422, description="A size parameter is out of range; `errors` names it.")
    def get(self, args: dict, job_id: str, name: str):
        """A plot of one job, as PNG."""
        job = load_job(job_id)
        if name not in P.PLOT_NAMES:
            abort(404, message=f"No plot named {name!r}; the plots are {', '.join(P.PLOT_NAMES)}.")
        png, = job_plots(job, [name], _size(args))
        return png_response(png, job["status"] in FINISHED)


@blp.route("/compare.png")
class Compare(MethodView):
    @blp.arguments(CompareArgsSchema, location="query")
    @blp.response(200, PNG, content_type="image/png",
                  description=f"One line per job (up to {P.MAX_COMPARE_JOBS}), its best value of the metric starred.")
    @blp.alt_response(404, description="A named job does not exist (or is another owner's); the message names it.")
    @blp.alt_response(422, description="Too many or no jobs, an unknown metric, or a size out of range.")
    def get(self, args: dict):
        """Several jobs' curves of one metric, overlaid (e.g. sigmoid against ReLU)."""
        jobs = [load_job(job_id) for job_id in job_ids(args["jobs"])]
        png = _render(lambda: render_compare([job_data(job) for job in jobs], args["metric"], _size(args)))
        return png_response(png, all(job["status"] in FINISHED for job in jobs))
