"""Figures to PNG bytes. Imports matplotlib (Agg, no display): run it where blocking
is harmless — the renderer's child processes (core/plots/pool.py), tests, scripts."""

from __future__ import annotations

import io
from typing import Callable

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from core.plots import probes, training  # noqa: E402
from core.plots.spec import PLOT_NAMES, JobData, Size  # noqa: E402

PLOTS: dict[str, Callable[[JobData, Size], Figure]] = {
    "curves": training.curves,
    "gradients": probes.gradients,
    "activations": probes.activations,
    "steps": training.steps,
}
assert tuple(PLOTS) == PLOT_NAMES


def png(fig: Figure) -> bytes:
    """The figure as PNG, at the pixel size it was made for."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, metadata={"Software": None})
    return buffer.getvalue()


def job_plot(name: str, data: JobData, size: Size) -> bytes:
    return png(PLOTS[name](data, size))


def compare_plot(jobs: list[JobData], metric: str, size: Size) -> bytes:
    return png(training.compare(jobs, metric, size))
