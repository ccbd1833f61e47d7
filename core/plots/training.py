"""Learning curves, sampled steps, and several jobs overlaid."""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from core.plots import style as S
from core.plots.spec import JobData, Size

METRIC_LABELS = {"val_accuracy": "validation accuracy", "train_accuracy": "training accuracy",
                 "val_loss": "validation loss", "train_loss": "training loss", "val_r2": "validation R²",
                 "train_r2": "training R²", "learning_rate": "learning rate"}


def score_keys(rows: list[dict]) -> tuple[str, str, str] | None:
    """The per-epoch score the job records: accuracy (classification) or R² (regression)."""
    for train, val, label in (("train_accuracy", "val_accuracy", "accuracy"), ("train_r2", "val_r2", "R²")):
        if any(r.get(train) is not None or r.get(val) is not None for r in rows):
            return train, val, label
    return None


def curves(data: JobData, size: Size) -> Figure:
    """Training and validation loss, and accuracy (or R²), per epoch; the best epoch, an
    early stop, and the findings read off these curves marked on them."""
    rows = data.rows
    fig, (loss_ax, score_ax) = S.figure(size, ncols=2)
    S.title(fig, data.title, "learning curves", data.status)
    if not rows:
        for ax in (loss_ax, score_ax):
            S.no_data(ax, "No epoch has finished yet.")
        return fig
    epochs = [r["epoch"] for r in rows]
    train_loss, val_loss = S.values(r.get("train_loss") for r in rows), S.values(r.get("val_loss") for r in rows)
    loss_ax.plot(epochs, train_loss, color=S.TRAIN, marker="o", markersize=3, label="training")
    loss_ax.plot(epochs, val_loss, color=S.VAL, marker="o", markersize=3, label="validation")
    finite = [v for v in train_loss + val_loss if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 1e3:
        loss_ax.set_yscale("log")
    loss_ax.set_title("Loss")
    loss_ax.set_ylabel("loss")
    keys = score_keys(rows)
    if keys is None:
        S.no_data(score_ax, "No accuracy or R² recorded.")
    else:
        train, val, label = keys
        score_ax.plot(epochs, S.values(r.get(train) for r in rows), color=S.TRAIN, marker="o", markersize=3,
                      label="training")
        score_ax.plot(epochs, S.values(r.get(val) for r in rows), color=S.VAL, marker="o", markersize=3,
                      label="validation")
        score_ax.set_title(label[0].upper() + label[1:])
        score_ax.set_ylabel(label)
        if label == "accuracy":
            score_ax.set_ylim(-0.02, 1.02)
    axes = [loss_ax] if keys is None else [loss_ax, score_ax]
    if data.status in ("queued", "running") and data.epochs_requested:
        for ax in axes:  # a live job's curves grow into a fixed frame
            ax.set_xlim(0.5, data.epochs_requested + 0.5)
    _stops(data, axes)
    _findings_on_curves(data, loss_ax, score_ax if keys else None, val_loss)
    for ax in axes:
        S.epochs_axis(ax, epochs)
        S.legend(ax, loc="best")
    return fig


def _stops(data: JobData, axes: list[Axes]) -> None:
    summary = data.summary or {}
    for ax in axes:
        best = summary.get("best_epoch")
        S.mark_epoch(ax, best, f"best epoch ({best})", S.BEST)
        if summary.get("stopped_early"):
            stop = summary.get("epochs_run")
            S.mark_epoch(ax, stop, f"early stop (epoch {stop})", S.STOP, linestyle="-.")


def _findings_on_curves(data: JobData, loss_ax: Axes, score_ax: Axes | None, val_loss: list[float]) -> None:
    fit = data.finding("poor_training_fit")
    if fit and score_ax is not None:
        ev, colour = fit["evidence"], S.finding_colour(fit)
        S.threshold(score_ax, ev.get("threshold"), f"training-fit bar ({ev.get('threshold'):.2f})"
                    if ev.get("threshold") is not None else "", colour)
        chance = ev.get("chance_accuracy")
        S.threshold(score_ax, chance, f"chance ({chance:.2f})" if chance is not None else "", S.STOP)
        S.note(score_ax, "poor training fit: below the bar" + (f" at epoch {fit['epoch']}" if fit.get("epoch")
                                                                else ""), colour)
    over = data.finding("overfitting")
    if over:
        ev, colour = over["evidence"], S.finding_colour(over)
        finite = [v for v in val_loss if math.isfinite(v)]
        if ev.get("val_loss_min_epoch") is not None and finite and ev.get("threshold") is not None:
            S.threshold(loss_ax, min(finite) * (1 + ev["threshold"]),
                        f"overfitting: val. loss {ev['threshold']:.0%} over its minimum", colour)
        S.mark_epoch(loss_ax, over.get("epoch"), f"overfitting from epoch {over.get('epoch')}", colour)
        gap = ev.get("accuracy_gap")
        if gap is not None and score_ax is not None:
            S.note(score_ax, f"overfitting: train − val accuracy = {gap:.3f}", colour)
    slow = data.finding("slow_convergence")
    if slow:
        ev, colour = slow["evidence"], S.finding_colour(slow)
        start, bar = ev.get("initial_loss"), ev.get("threshold")
        if start is not None and bar is not None:
            S.threshold(loss_ax, start * (1 - bar), f"slow convergence: {bar:.0%} below the initial loss", colour)
    oscillating = data.finding("oscillating_loss")
    if oscillating and score_ax is not None:
        ev = oscillating["evidence"]
        S.note(score_ax, f"oscillating: {ev.get('swings')} swings ≥ {ev.get('swing_size', 0):.0%} "
                         f"(threshold {ev.get('threshold')})", S.finding_colour(oscillating))


def steps(data: JobData, size: Size) -> Figure:
    """The sampled per-step batch loss and total gradient norm: what an explosion inside
    epoch 1 looks like, with the exploding-gradient thresholds drawn."""
    fig, (loss_ax, grad_ax) = S.figure(size, nrows=2, sharex=True)
    S.title(fig, data.title, "sampled training steps", data.status)
    sampled = data.steps or {}
    step = sampled.get("step") or []
    if not step:
        for ax in (loss_ax, grad_ax):
            S.no_data(ax, "No steps were sampled (the request has \"diagnose\": false, or no step has run yet).")
        return fig
    loss, grad = S.values(sampled.get("loss") or []), S.values(sampled.get("grad_norm") or [])
    loss_ax.plot(step, loss, color=S.TRAIN, marker=".", markersize=3, linewidth=1, label="batch loss")
    grad_ax.plot(step, S.positive(grad), color="#9467bd", marker=".", markersize=3, linewidth=1,
                 label="gradient norm (all layers)")
    grad_ax.set_yscale("log")
    S.zeros_note(grad_ax, [grad], "gradient norm")
    loss_ax.set_title("Batch loss")
    loss_ax.set_ylabel("loss")
    grad_ax.set_title("Total gradient L2 norm")
    grad_ax.set_ylabel("L2 norm (log scale)")
    grad_ax.set_xlabel("training step")
    _epoch_starts(loss_ax, grad_ax, step, sampled.get("epoch") or [])
    missing = next((s for s, a, b in zip(step, loss, grad) if not (math.isfinite(a) and math.isfinite(b))), None)
    if missing is not None:
        for ax in (loss_ax, grad_ax):
            S.mark_epoch(ax, missing, f"NaN/Inf from step {missing}", S.SEVERITY_COLOURS["error"])
    exploding = data.finding("exploding_gradient")
    if exploding:
        ev, colour = exploding["evidence"], S.finding_colour(exploding)
        if ev.get("initial_grad_norm") and ev.get("threshold"):
            S.threshold(grad_ax, ev["initial_grad_norm"] * ev["threshold"],
                        f"exploding: {ev['threshold']:g}× the initial norm", colour)
        if ev.get("initial_loss") and ev.get("loss_threshold_factor"):
            S.threshold(loss_ax, ev["initial_loss"] * ev["loss_threshold_factor"],
                        f"exploding: {ev['loss_threshold_factor']:g}× the initial loss", colour)
            if max((v for v in loss if math.isfinite(v)), default=0) > 10 * ev["initial_loss"]:
                loss_ax.set_yscale("log")
        first = next((s for s, e in zip(step, sampled.get("epoch") or []) if e == exploding.get("epoch")), None)
        for ax in (loss_ax, grad_ax):
            S.mark_epoch(ax, first, f"epoch {exploding.get('epoch')} starts", colour)
        growth = ev.get("grad_norm_growth")
        S.note(grad_ax, f"exploding gradient (epoch {exploding.get('epoch')}): "
               + (f"norm grew {growth:,.0f}-fold" if growth else "non-finite values"), colour)
    for ax in (loss_ax, grad_ax):
        ax.grid(True, alpha=0.3)
        S.legend(ax, loc="best")
    return fig


def _epoch_starts(loss_ax: Axes, grad_ax: Axes, step: list[int], epoch: list[int]) -> None:
    """Faint lines where epochs start, when there are few enough to tell apart."""
    starts = [s for i, (s, e) in enumerate(zip(step, epoch)) if i > 0 and e != epoch[i - 1]]
    if len(starts) > 30:
        return
    for ax in (loss_ax, grad_ax):
        for s in starts:
            ax.axvline(s, color="#bbbbbb", linewidth=0.6, zorder=0)


def compare(jobs: list[JobData], metric: str, size: Size) -> Figure:
    """One metric per epoch, one line per job; each job's best value marked."""
    fig, (ax,) = S.figure(size)
    label = METRIC_LABELS.get(metric, metric)
    fig.suptitle(f"Compare: {label}", fontsize="large")
    lower_is_better = metric.endswith("_loss")
    drawn = 0
    for job in jobs:
        epochs = [r["epoch"] for r in job.rows]
        series = S.values(r.get(metric) for r in job.rows)
        finite = [(v, e) for v, e in zip(series, epochs) if math.isfinite(v)]
        name = S.plain(job.title, 40) + ("" if job.status == "succeeded" else f" ({job.status})")
        if not finite:
            ax.plot([], [], label=f"{name}: no {label}")
            continue
        line, = ax.plot(epochs, series, marker="o", markersize=2, linewidth=1.5, label=name)
        best_value, best_epoch = (min if lower_is_better else max)(finite)
        ax.plot([best_epoch], [best_value], marker="*", markersize=11, color=line.get_color(), zorder=5)
        drawn += 1
    if not drawn:
        S.no_data(ax, f"None of these jobs has recorded {label} yet.")
    ax.set_ylabel(label)
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    best = "lowest" if lower_is_better else "highest"
    ax.plot([], [], linestyle="none", marker="*", color="#555555", label=f"{best} of each job")
    S.legend(ax, loc="best")
    return fig
