"""The plot functions on synthetic curves: what each Figure shows (axes labelled, log
scales, the marks a finding leaves), and PNGs decoded at the size asked for.
No services: the functions are pure."""

from __future__ import annotations

import io
import math

import pytest
from matplotlib.lines import Line2D
from PIL import Image

from core.plots import probes, training
from core.plots.render import PLOTS, compare_plot, job_plot
from core.plots.spec import PLOT_NAMES, JobData, Size

LAYERS = ["hidden1", "hidden2", "hidden3", "output"]
SIZE = Size(width=900, height=450, dpi=100)


def rows(epochs: int = 10, score: str = "accuracy") -> list[dict]:
    """Epoch rows shaped like the worker's: the input side's gradient 10^-2 per layer below the next."""
    out = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.0 / e + 0.02 * e,
               f"train_{score}": min(0.99, 0.1 * e), f"val_{score}": min(0.95, 0.08 * e),
               "grad_norm": {name: 10.0 ** (2 * i - 6) for i, name in enumerate(LAYERS)},
               "dead_fraction": {name: 0.1 * e for name in LAYERS[:-1]},
               "activation_variance": {name: 10.0 ** -i for i, name in enumerate(LAYERS[:-1])}}
        out.append(row)
    return out


STEPS = {"step": list(range(1, 41)), "epoch": [1 + (s - 1) // 4 for s in range(1, 41)],
         "loss": [2.3 if s < 10 else 2.3 * s * 10 for s in range(1, 41)],
         "grad_norm": [1.0 if s < 10 else 10.0 ** 4 for s in range(1, 41)]}


def finding(code: str, epoch: int, **evidence) -> dict:
    return {"code": code, "severity": "error", "epoch": epoch, "evidence": evidence, "explanation": "x",
            "suggestions": []}


def data(findings: list[dict] | None = None, **kwargs) -> JobData:
    defaults = {"title": "synthetic", "status": "succeeded", "rows": rows(), "steps": STEPS,
                "initial": {"activation_variance": {"hidden1": 1.0, "hidden2": 0.5, "hidden3": 0.25}},
                "summary": {"best_epoch": 7, "stopped_early": True, "epochs_run": 10},
                "diagnosis": {"verdict": "training_problem", "findings": findings or []}}
    return JobData(**{**defaults, **kwargs})


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def vertical_at(ax, x: float) -> list[Line2D]:
    return [line for line in ax.get_lines() if list(line.get_xdata()) == [x, x]]


def horizontal_at(ax, y: float) -> list[Line2D]:
    return [line for line in ax.get_lines()
            if len(line.get_ydata()) == 2 and all(math.isclose(v, y, rel_tol=1e-9) for v in line.get_ydata())]


def test_curves_show_loss_and_accuracy_with_the_best_epoch_and_the_early_stop():
    fig = training.curves(data(), SIZE)
    loss_ax, score_ax = fig.axes
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "loss")
    assert (score_ax.get_xlabel(), score_ax.get_ylabel()) == ("epoch", "accuracy")
    assert "synthetic" in fig.get_suptitle()
    for ax in (loss_ax, score_ax):
        labels = legend_texts(ax)
        assert {"training", "validation", "best epoch (7)", "early stop (epoch 10)"} <= set(labels)
        assert vertical_at(ax, 7) and vertical_at(ax, 10)
    train_line = next(line for line in loss_ax.get_lines() if line.get_label() == "training")
    assert list(train_line.get_ydata()) == [2.0 / e for e in range(1, 11)]


def test_curves_of_a_regression_job_plot_r2():
    fig = training.curves(data(rows=rows(score="r2")), SIZE)
    assert fig.axes[1].get_ylabel() == "R²"
    assert [line.get_label() for line in fig.axes[1].get_lines()][:2] == ["training", "validation"]


def test_curves_mark_the_training_fit_bar_and_overfitting_where_the_findings_say():
    fit = finding("poor_training_fit", 10, threshold=0.55, chance_accuracy=0.1, train_accuracy=0.4)
    over = finding("overfitting", 4, threshold=0.1, val_loss_min_epoch=4, accuracy_gap=0.2)
    loss_ax, score_ax = training.curves(data([fit, over]), SIZE).axes
    assert horizontal_at(score_ax, 0.55) and horizontal_at(score_ax, 0.1)
    assert "training-fit bar (0.55)" in legend_texts(score_ax)
    val_min = min(2.0 / e + 0.02 * e for e in range(1, 11))
    assert horizontal_at(loss_ax, val_min * 1.1)
    assert vertical_at(loss_ax, 4) and "overfitting from epoch 4" in legend_texts(loss_ax)


def test_gradients_are_per_layer_on_a_log_scale_input_to_output_with_the_vanishing_threshold():
    vanishing = finding("vanishing_gradient", 1, first_to_last_grad_ratio=1e-6, threshold=1e-3)
    time_ax, profile_ax = probes.gradients(data([vanishing]), SIZE).axes
    assert time_ax.get_yscale() == "log" and profile_ax.get_yscale() == "log"
    assert "gradient" in time_ax.get_ylabel() and time_ax.get_xlabel() == "epoch"
    assert legend_texts(time_ax)[:4] == LAYERS
    assert [t.get_text() for t in profile_ax.get_xticklabels()] == LAYERS
    bars = [patch.get_height() for patch in profile_ax.patches]
    assert bars == pytest.approx([1e-6, 1e-4, 1e-2, 1.0])
    assert horizontal_at(profile_ax, 1.0 * 1e-3)  # the output layer's norm times the threshold
    assert vertical_at(time_ax, 1) and "vanishing from epoch 1" in legend_texts(time_ax)
    assert any("1.0e-06" in text for text in legend_texts(profile_ax))


def test_gradients_without_a_finding_draw_no_threshold():
    time_ax, profile_ax = probes.gradients(data(), SIZE).axes
    assert not profile_ax.get_lines() and legend_texts(time_ax) == LAYERS


def test_activations_show_dead_units_per_layer_with_the_threshold_and_first_epoch():
    dead = finding("dead_relu", 6, dead_fraction=0.9, threshold=0.5, hidden_layer=3)
    dead_ax, variance_ax = probes.activations(data([dead]), SIZE).axes
    assert dead_ax.get_ylabel() == "share of units" and dead_ax.get_xlabel() == "epoch"
    assert legend_texts(dead_ax)[:3] == LAYERS[:3]
    assert horizontal_at(dead_ax, 0.5) and vertical_at(dead_ax, 6)
    assert any("90% in hidden layer 3" in text for text in legend_texts(dead_ax))
    assert variance_ax.get_yscale() == "log"
    assert legend_texts(variance_ax) == ["before training", "epoch 10"]


def test_activations_without_probes_say_so():
    bare = [{"epoch": 1, "train_loss": 1.0, "grad_norm": {"output": 1.0}}]
    fig = probes.activations(data(rows=bare, initial=None), SIZE)
    assert any("No activation probes" in t.get_text() for t in fig.axes[0].texts)


def test_steps_show_loss_and_gradient_norm_with_the_exploding_thresholds():
    exploding = finding("exploding_gradient", 3, initial_grad_norm=1.0, threshold=1000.0, initial_loss=2.3,
                        loss_threshold_factor=100.0, grad_norm_growth=1e4)
    loss_ax, grad_ax = training.steps(data([exploding]), SIZE).axes
    assert grad_ax.get_yscale() == "log" and grad_ax.get_xlabel() == "training step"
    assert loss_ax.get_ylabel() == "loss" and "norm" in grad_ax.get_ylabel()
    assert horizontal_at(grad_ax, 1000.0) and horizontal_at(loss_ax, 230.0)
    first_step_of_epoch_3 = 9
    assert vertical_at(grad_ax, first_step_of_epoch_3)
    assert any("grew 10,000-fold" in text for text in legend_texts(grad_ax))


def test_compare_draws_one_line_per_job_and_stars_each_best_epoch():
    other = data(title="relu", rows=[{**r, "val_accuracy": r["val_accuracy"] / 2} for r in rows()])
    fig = training.compare([data(title="sigmoid"), other], "val_accuracy", SIZE)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "validation accuracy" and ax.get_xlabel() == "epoch"
    assert legend_texts(ax)[:2] == ["sigmoid", "relu"]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*" and len(line.get_xdata()) == 1]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in stars] == [(10, 0.8), (10, 0.4)]


def test_user_text_is_drawn_as_given_never_as_mathtext():
    hostile = data(title="$\\frac{1}{0$ <script>_name")
    png = job_plot("curves", hostile, SIZE)  # a stray $ would raise in the mathtext parser
    assert png.startswith(b"\x89PNG")
    fig = training.curves(hostile, SIZE)
    assert fig.get_suptitle().startswith(r"\$\frac{1}{0\$ <script>")


def test_every_plot_draws_a_job_with_no_epochs_yet():
    empty = JobData(title="queued", status="queued")
    for name in PLOT_NAMES:
        assert Image.open(io.BytesIO(job_plot(name, empty, SIZE))).size == (900, 450)


@pytest.mark.parametrize("size", [Size(640, 360, 80), Size(1000, 500, 150)], ids=lambda s: s.key)
def test_a_png_decodes_at_the_size_asked_for(size):
    assert tuple(PLOTS) == PLOT_NAMES
    image = Image.open(io.BytesIO(job_plot("gradients", data(), size)))
    image.load()
    assert image.format == "PNG" and image.size == (size.width, size.height)
    image = Image.open(io.BytesIO(compare_plot([data()], "val_loss", size)))
    assert image.size == (size.width, size.height)


def test_a_running_jobs_curves_grow_into_the_epochs_requested():
    running = data(status="running", rows=rows(3), summary=None, epochs_requested=20)
    loss_ax, score_ax = training.curves(running, SIZE).axes
    assert loss_ax.get_xlim() == (0.5, 20.5) and score_ax.get_xlim() == (0.5, 20.5)
    assert "(running)" in training.curves(running, SIZE).get_suptitle()


def test_zero_gradients_are_named_not_silently_dropped_from_a_log_scale():
    dead = [{**r, "grad_norm": {name: 0.0 for name in LAYERS}} for r in rows(3)]
    time_ax, _ = probes.gradients(data(rows=dead), SIZE).axes
    assert any("= 0 at some points" in text for text in legend_texts(time_ax))
