"""What every plot shares: a figure of the asked size, safe text, colours, and the
marks a finding leaves on a plot (the epoch it was first seen, its threshold)."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from core.plots.spec import Size

TRAIN, VAL = "#1f77b4", "#ff7f0e"
BEST, STOP = "#2ca02c", "#555555"
SEVERITY_COLOURS = {"error": "#c0392b", "warning": "#d68910", "info": "#7f8c8d"}
MAX_TITLE = 80
NOTE_PREFIX = "\x00note:"  # marks a legend entry that is a finding's evidence, not a line


def plain(text: object, limit: int = MAX_TITLE) -> str:
    """User text (a job name) drawn as it is: no mathtext (``$...$`` would be parsed,
    and a stray ``$`` makes rendering fail), and cut to fit a title. A leading underscore
    would hide a legend entry: a zero-width space goes before it."""
    text = str(text)
    if text.startswith("_"):
        text = "\u200b" + text
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def figure(size: Size, ncols: int = 1, nrows: int = 1, **subplots) -> tuple[Figure, list[Axes]]:
    """A figure of exactly ``size`` pixels (no pyplot: no global state, safe in any thread)."""
    fig = Figure(figsize=(size.width / size.dpi, size.height / size.dpi), dpi=size.dpi, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, [ax for row in axes for ax in row]


def title(fig: Figure, data_title: str, what: str, status: str | None = None) -> None:
    suffix = f"  ({status})" if status and status != "succeeded" else ""
    fig.suptitle(f"{plain(data_title)}: {what}{suffix}", fontsize="large")


def values(series: Iterable) -> list[float]:
    """None (a value not recorded, or NaN/Inf stored as null) becomes NaN: a gap in the line."""
    return [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan for v in series]


def positive(series: Sequence[float]) -> list[float]:
    """For log scales: zero and below are gaps, not errors."""
    return [v if v > 0 else math.nan for v in series]


def zeros_note(ax: Axes, series: Iterable[Sequence[float]], what: str) -> None:
    """Exact zeros cannot be drawn on a log scale: say so rather than leave a silent gap
    (a dead network's gradient is exactly zero)."""
    if any(v == 0 for values in series for v in values):
        note(ax, f"{what} = 0 at some points (not drawn on a log scale)", "#555555")


def layer_colours(n: int) -> list:
    """Input side dark, output side bright: the order of the layers reads off the colour."""
    cmap = colormaps["viridis"]
    return [cmap(0.9 * i / max(n - 1, 1)) for i in range(n)]


def no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def mark_epoch(ax: Axes, epoch: float | None, label: str, colour: str, linestyle: str = "--") -> None:
    """A vertical line at ``epoch``, named in the legend."""
    if epoch is None:
        return
    ax.axvline(epoch, color=colour, linestyle=linestyle, linewidth=1.2, label=label)


def threshold(ax: Axes, y: float | None, label: str, colour: str) -> None:
    """A horizontal threshold line, named in the legend."""
    if y is None or not math.isfinite(y):
        return
    ax.axhline(y, color=colour, linestyle=":", linewidth=1.5, label=label)


def note(ax: Axes, text: str, colour: str) -> None:
    """A finding's evidence in words: a legend entry in the finding's colour, so that the
    legend's placement keeps it off the data."""
    ax.plot([], [], linestyle="none", marker="s", markersize=8, markerfacecolor="white", markeredgecolor=colour,
            label=f"{NOTE_PREFIX}{text}", color=colour)


def finding_colour(finding: dict) -> str:
    return SEVERITY_COLOURS.get(finding.get("severity"), SEVERITY_COLOURS["info"])


def epochs_axis(ax: Axes, epochs: Sequence[int]) -> None:
    ax.set_xlabel("epoch")
    if epochs and ax.get_autoscalex_on():  # (a live job's frame is fixed already)
        # Every epoch recorded, even where values are missing (NaN), and whole-number ticks.
        pad = max(0.5, 0.03 * (max(epochs) - min(epochs)))
        ax.set_xlim(min(epochs) - pad, max(epochs) + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.grid(True, alpha=0.3)


def legend(ax: Axes, **kwargs) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    shown = ax.legend(handles, [label.removeprefix(NOTE_PREFIX) for label in labels], fontsize="small", **kwargs)
    for text, handle, label in zip(shown.get_texts(), handles, labels):
        if label.startswith(NOTE_PREFIX):
            text.set_color(handle.get_color())
