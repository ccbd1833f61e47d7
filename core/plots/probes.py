"""What the probes saw inside the network: gradient norms per layer, dead and
saturated units, activation variance. Layers are drawn input to output, in the
order the worker recorded them (``hidden1``…, ``conv1``…, ``output``)."""

from __future__ import annotations

import math
import statistics

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from core.plots import style as S
from core.plots.spec import JobData, Size


def layers(rows: list[dict], key: str) -> list[str]:
    """The layers a per-layer metric names, in recorded order (input to output)."""
    return list(dict.fromkeys(name for r in rows for name in (r.get(key) or {})))


def layer_series(rows: list[dict], key: str, layer: str) -> list[float]:
    return S.values((r.get(key) or {}).get(layer) for r in rows)


def _median(series: list[float]) -> float | None:
    finite = [v for v in series if math.isfinite(v) and v > 0]
    return statistics.median(finite) if finite else None


def gradients(data: JobData, size: Size) -> Figure:
    """Gradient norm per layer over the epochs (log scale), and the layer profile: the
    picture of a vanishing gradient is the input side orders of magnitude below the output."""
    fig, (time_ax, profile_ax) = S.figure(size, ncols=2, width_ratios=[3, 2])
    S.title(fig, data.title, "gradient norm per layer", data.status)
    rows = data.rows
    names = layers(rows, "grad_norm")
    if not names:
        for ax in (time_ax, profile_ax):
            S.no_data(ax, "No gradient norms recorded yet.")
        return fig
    epochs = [r["epoch"] for r in rows]
    colours = S.layer_colours(len(names))
    for name, colour in zip(names, colours):
        time_ax.plot(epochs, S.positive(layer_series(rows, "grad_norm", name)), color=colour, marker="o",
                     markersize=3, label=name)
    time_ax.set_yscale("log")
    S.zeros_note(time_ax, [layer_series(rows, "grad_norm", name) for name in names], "gradient norm")
    time_ax.set_title("Mean gradient L2 norm per epoch")
    time_ax.set_ylabel("gradient L2 norm (log scale)")
    S.epochs_axis(time_ax, epochs)

    medians = [_median(layer_series(rows, "grad_norm", name)) for name in names]
    positions = list(range(len(names)))
    profile_ax.bar(positions, [m if m is not None else math.nan for m in medians], color=colours)
    profile_ax.set_yscale("log")
    profile_ax.set_xticks(positions, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6
                          else "center")
    profile_ax.set_title("Median over epochs, input → output")
    profile_ax.set_xlabel("layer (input → output)")
    profile_ax.set_ylabel("gradient L2 norm (log scale)")
    profile_ax.grid(True, axis="y", alpha=0.3)

    vanishing = data.finding("vanishing_gradient")
    if vanishing:
        ev, colour = vanishing["evidence"], S.finding_colour(vanishing)
        last = medians[-1]
        if last is not None and ev.get("threshold") is not None:
            S.threshold(profile_ax, last * ev["threshold"], f"vanishing: {names[-1]} × {ev['threshold']:g}", colour)
        S.mark_epoch(time_ax, vanishing.get("epoch"), f"vanishing from epoch {vanishing.get('epoch')}", colour)
        ratio = ev.get("first_to_last_grad_ratio")
        if ratio is not None:
            S.note(profile_ax, f"vanishing gradient: {names[0]} / {names[-1]}\n= {ratio:.1e} "
                               f"(threshold {ev.get('threshold'):g})", colour)
    exploding = data.finding("exploding_gradient")
    if exploding:
        S.mark_epoch(time_ax, exploding.get("epoch"), f"exploding at epoch {exploding.get('epoch')}",
                     S.finding_colour(exploding))
    # Under the axes, not on them: with many layers no corner is free of lines.
    S.legend(time_ax, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=min(len(names), 5))
    S.legend(profile_ax, loc="best")
    return fig


# Per-layer unit statistics: the curves key, the finding that reads it, a title and the y label.
UNIT_PANELS = (("dead_fraction", "dead_relu", "Dead units (never active)", "share of units"),
               ("saturated_fraction", "saturated_activation", "Saturated pre-activations", "share of units"))


def activations(data: JobData, size: Size) -> Figure:
    """Dead-unit and saturation fractions per hidden layer over the epochs, and the
    activation variance per layer at the start and at the end."""
    rows = data.rows
    panels = [p for p in UNIT_PANELS if layers(rows, p[0])]
    initial_variance = (data.initial or {}).get("activation_variance") or {}
    has_variance = bool(layers(rows, "activation_variance") or initial_variance)
    count = len(panels) + (1 if has_variance else 0)
    fig, axes = S.figure(size, ncols=max(count, 1))
    S.title(fig, data.title, "activations per layer", data.status)
    if count == 0:
        S.no_data(axes[0], "No activation probes recorded (yet): ReLU-family layers record dead units, "
                           "sigmoid/tanh layers saturation.")
        return fig
    epochs = [r["epoch"] for r in rows]
    for ax, (key, code, heading, ylabel) in zip(axes, panels):
        names = layers(rows, key)
        for name, colour in zip(names, S.layer_colours(len(names))):
            ax.plot(epochs, layer_series(rows, key, name), color=colour, marker="o", markersize=3, label=name)
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.set_title(heading)
        ax.set_ylabel(ylabel)
        S.epochs_axis(ax, epochs)
        _unit_finding(ax, data.finding(code))
        S.legend(ax, loc="best")
    if has_variance:
        _variance(axes[-1], data, initial_variance)
    return fig


def _unit_finding(ax: Axes, finding: dict | None) -> None:
    if not finding:
        return
    ev, colour = finding["evidence"], S.finding_colour(finding)
    share = ev.get("dead_fraction", ev.get("saturated_fraction"))
    S.threshold(ax, ev.get("threshold"), f"threshold ({ev.get('threshold'):.0%})" if ev.get("threshold") is not None
                else "", colour)
    S.mark_epoch(ax, finding.get("epoch"), f"first over it: epoch {finding.get('epoch')}", colour)
    if share is not None:
        S.note(ax, f"{finding['code'].replace('_', ' ')}: {share:.0%} in hidden layer {ev.get('hidden_layer')}",
               colour)


def _variance(ax: Axes, data: JobData, initial: dict) -> None:
    """Activation variance per hidden layer before the first step and at the last epoch
    (log scale): a poor initialisation makes it collapse or explode with depth."""
    rows = data.rows
    names = list(dict.fromkeys([*initial, *layers(rows, "activation_variance")]))
    positions = list(range(len(names)))
    if initial:
        ax.plot(positions, S.positive(S.values(initial.get(n) for n in names)), marker="s", color=S.STOP,
                label="before training")
    last = (rows[-1].get("activation_variance") or {}) if rows else {}
    if last:
        ax.plot(positions, S.positive(S.values(last.get(n) for n in names)), marker="o", color=S.TRAIN,
                label=f"epoch {rows[-1]['epoch']}")
    ax.set_yscale("log")
    ax.set_xticks(positions, names, rotation=45 if len(names) > 6 else 0)
    ax.set_title("Activation variance, input → output")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel("variance (log scale)")
    ax.grid(True, alpha=0.3)
    init = data.finding("poor_weight_initialization")
    if init:
        ev = init["evidence"]
        S.note(ax, f"poor initialisation: last / first = {ev.get('last_to_first_activation_variance'):.1e}\n"
                   f"(threshold {ev.get('threshold'):g}× either way)", S.finding_colour(init))
    S.legend(ax, loc="best")
