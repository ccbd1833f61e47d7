"""Each diagnosis rule on synthetic probe data, including the edge cases."""

from __future__ import annotations

import math

import pytest

from core.settings import Limits
from core.spec import merge_patch, normalise
from workers.diagnosis import diagnose
from workers.diagnosis import thresholds as T

DATA = {"classes": 10, "train_class_counts": {str(c): 100 for c in range(10)}}


def request(**overrides) -> dict:
    base = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64, 64]}, "epochs": 20}
    base.update(overrides)
    return normalise(base, limits=Limits(), resolver=None)


def rows(train_acc, val_acc=None, train_loss=None, val_loss=None, grads=None, **per_layer) -> list[dict]:
    """Curves rows; per-epoch scalars given as lists, grads as {layer: [..]}."""
    n = len(train_acc)
    val_acc = val_acc or train_acc
    train_loss = train_loss or [2.3 * (1 - a) + 0.01 for a in train_acc]
    val_loss = val_loss or [2.3 * (1 - a) + 0.01 for a in val_acc]
    grads = grads or {"hidden1": [0.3] * n, "hidden2": [0.3] * n, "output": [0.4] * n}
    out = []
    for i in range(n):
        row = {"epoch": i + 1, "train_accuracy": train_acc[i], "val_accuracy": val_acc[i],
               "train_loss": train_loss[i], "val_loss": val_loss[i], "learning_rate": 0.001,
               "grad_norm": {k: v[i] for k, v in grads.items()}, "nonfinite": False}
        for key, layers in per_layer.items():
            row[key] = {k: v[i] for k, v in layers.items()}
        out.append(row)
    return out


def summary_of(rs: list[dict], **extra) -> dict:
    last = rs[-1]
    return {"train_accuracy": last["train_accuracy"], "val_accuracy": last["val_accuracy"],
            "train_loss": last["train_loss"], "val_loss": last["val_loss"], "best_epoch": last["epoch"],
            "epochs_run": len(rs), "stopped_early": False, "returned_epoch": last["epoch"], **extra}


def run(req, rs, summary=None, stop=None, steps=None, initial=None, data=DATA) -> dict:
    return diagnose(req, rs, summary if summary is not None else summary_of(rs), stop, data,
                    limits=Limits(), resolver=None, steps=steps, initial=initial)


def codes(d: dict) -> list[str]:
    return [f["code"] for f in d["findings"]]


def steady(start: float, end: float, n: int) -> list[float]:
    return [start + (end - start) * i / (n - 1) for i in range(n)] if n > 1 else [end]


def test_a_well_fitted_run_is_healthy_with_no_findings():
    d = run(request(), rows(steady(0.5, 0.98, 10), steady(0.5, 0.96, 10)))
    assert d == {"verdict": "healthy", "findings": []}


def test_a_network_that_does_not_fit_its_training_data_is_never_called_overfitting():
    # A big train/validation gap, but training accuracy itself is poor: step 1 fails.
    rs = rows(steady(0.2, 0.45, 10), steady(0.1, 0.12, 10))
    d = run(request(), rs)
    assert d["verdict"] == "training_problem"
    assert codes(d)[0] == "poor_training_fit" and "overfitting" not in codes(d)
    first = d["findings"][0]
    assert first["severity"] == "error" and first["evidence"]["threshold"] == pytest.approx(0.55)
    assert first["evidence"]["train_accuracy"] == 0.45 and first["suggestions"]


def test_overfitting_when_validation_loss_turns_up_while_training_loss_falls():
    n = 12
    val_loss = [1.0, 0.8, 0.7, 0.65, 0.66, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
    rs = rows([0.7 + 0.025 * i for i in range(n)], [0.8] * n, train_loss=steady(1.0, 0.01, n), val_loss=val_loss)
    d = run(request(), rs)
    assert d["verdict"] == "overfitting" and codes(d) == ["overfitting"]
    f = d["findings"][0]
    assert f["epoch"] == 4 and f["evidence"]["val_loss_rise"] == pytest.approx(1.0 / 0.65 - 1, rel=1e-4)
    assert f["evidence"]["threshold"] == T.VAL_LOSS_RISE
    touched = {key for s in f["suggestions"] for key in s["patch"]}
    assert {"patience", "regularization"} <= touched


def test_a_large_gap_is_overfitting_even_before_the_curve_turns():
    d = run(request(), rows([1.0] * 5, [0.5] * 5, train_loss=steady(0.5, 0.01, 5), val_loss=steady(2, 1.5, 5)))
    assert d["verdict"] == "overfitting"
    assert d["findings"][0]["evidence"]["relative_gap"] == pytest.approx(0.5 / 0.9, rel=1e-4)


def test_a_rising_validation_loss_without_an_accuracy_gap_is_not_overfitting():
    n = 10
    rs = rows([1.0] * n, [0.98] * n, train_loss=steady(0.3, 0.001, n),
              val_loss=[0.3, 0.2, 0.15, 0.12, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17])
    assert run(request(), rs)["verdict"] == "healthy"


def test_hard_data_with_a_modest_gap_and_falling_validation_loss_is_healthy():
    # MNIST-1D-like: training 0.71, validation 0.55, validation loss still falling.
    n = 10
    rs = rows(steady(0.3, 0.71, n), steady(0.25, 0.55, n), train_loss=steady(2.0, 0.88, n),
              val_loss=steady(2.0, 1.19, n))
    assert run(request(), rs)["verdict"] == "healthy"


def test_early_stopping_that_restored_the_best_epoch_is_reported_instead_of_overfitting():
    n = 8
    rs = rows([1.0] * n, [0.8] * n, train_loss=steady(0.5, 0.01, n),
              val_loss=[0.9, 0.8, 0.75, 0.7, 0.72, 0.75, 0.8, 0.85])
    req = request(patience=4)
    summary = summary_of(rs, stopped_early=True, best_epoch=4, returned_epoch=4)
    d = run(req, rs, summary, stop="early_stopped")
    assert d["verdict"] == "healthy" and codes(d) == ["early_stopped"]
    f = d["findings"][0]
    assert f["severity"] == "info" and f["evidence"] == {"stopped_epoch": 8, "best_epoch": 4, "patience": 4,
                                                         "weights_restored": 1}
    # ...unless the user asked for a validation accuracy the model does not reach.
    strict = request(patience=4, targets={"val_accuracy": 0.9})
    assert run(strict, rs, summary, stop="early_stopped")["verdict"] == "overfitting"


def test_targets_override_what_counts_as_fitting():
    rs = rows(steady(0.5, 0.95, 5), steady(0.5, 0.94, 5))
    assert run(request(), rs)["verdict"] == "healthy"
    assert run(request(targets={"train_accuracy": 0.99}), rs)["verdict"] == "training_problem"
    assert run(request(targets={"val_accuracy": 0.97}), rs)["verdict"] == "overfitting"


def test_chance_is_the_majority_share_of_the_training_labels():
    data = {"classes": 2, "train_class_counts": {"0": 950, "1": 50}}
    d = run(request(), rows([0.95] * 5), data=data)  # always answering class 0 scores 0.95
    assert d["verdict"] == "training_problem"
    assert d["findings"][0]["evidence"]["chance_accuracy"] == 0.95
    assert "class_imbalance" in codes(d)


def test_vanishing_gradient_from_the_first_to_last_ratio():
    n = 5
    grads = {f"hidden{i}": [10.0 ** (i - 9)] * n for i in range(1, 9)}
    grads["output"] = [0.5] * n
    req = request(architecture={"hidden_layers": [100] * 8}, activation="sigmoid",
                  optimizer={"name": "sgd", "learning_rate": 0.1})
    d = run(req, rows([0.1] * n, grads=grads))
    assert d["verdict"] == "training_problem"
    assert codes(d)[:2] == ["poor_training_fit", "vanishing_gradient"]
    f = d["findings"][1]
    assert f["evidence"]["first_to_last_grad_ratio"] == pytest.approx(2e-8)
    assert f["evidence"]["threshold"] == T.VANISHING_RATIO
    first_fix = f["suggestions"][0]["patch"]
    assert first_fix["activation"]["name"] == "relu"
    assert first_fix["architecture"] == {"init": "kaiming_normal", "batch_norm": True}
    # poor_training_fit leads with the cause's fix
    assert d["findings"][0]["suggestions"][0] == f["suggestions"][0]


def test_no_vanishing_gradient_with_one_hidden_layer_or_healthy_ratios():
    n = 3
    one = request(architecture={"hidden_layers": [8]})
    grads = {"hidden1": [1e-9] * n, "output": [1.0] * n}
    assert "vanishing_gradient" not in codes(run(one, rows([0.1] * n, grads=grads)))
    assert "vanishing_gradient" not in codes(run(request(), rows([0.1] * n))) 


def test_a_mild_but_steady_shrink_explains_a_stuck_deep_network():
    n = 5
    layers = [f"hidden{i}" for i in range(1, 11)] + ["output"]
    grads = {name: [0.08 / 1.4 ** (10 - i)] * n for i, name in enumerate(layers)}  # ratio ~0.035
    req = request(architecture={"hidden_layers": [100] * 10}, activation="tanh",
                  optimizer={"name": "sgd", "learning_rate": 0.01})
    stuck = run(req, rows([0.1] * n, grads=grads))
    assert "vanishing_gradient" in codes(stuck)
    assert stuck["findings"][1]["evidence"]["threshold"] == T.VANISHING_RATIO_MILD
    fitted = run(req, rows(steady(0.5, 0.99, n), grads=grads))
    assert fitted["verdict"] == "healthy" and "vanishing_gradient" not in codes(fitted)


def test_non_finite_from_the_first_step_is_an_exploding_training_problem():
    rs = rows([0.1], train_loss=[None], val_loss=[None])
    rs[0]["nonfinite"] = True
    steps = {"step": [1], "epoch": [1], "loss": [None], "grad_norm": [None]}
    d = run(request(), rs, summary_of(rs) | {"train_loss": None}, stop="diverged", steps=steps)
    assert d["verdict"] == "training_problem"
    assert codes(d)[:2] == ["poor_training_fit", "exploding_gradient"]
    f = d["findings"][1]
    assert f["severity"] == "error" and f["evidence"]["non_finite"] == 1 and f["epoch"] == 1
    assert any("optimizer" in s["patch"] for s in f["suggestions"])


def test_an_explosion_inside_the_first_epoch_is_seen_in_the_step_samples():
    steps = {"step": [1, 2, 3, 4], "epoch": [1, 1, 1, 1], "loss": [2.3, 27.0, 4.7e5, 2.6e6],
             "grad_norm": [0.25, 36.0, 2.3e4, 9e5]}
    d = run(request(optimizer={"name": "sgd", "learning_rate": 50}), rows([0.1] * 5), steps=steps)
    f = next(f for f in d["findings"] if f["code"] == "exploding_gradient")
    assert f["evidence"]["grad_norm_growth"] == pytest.approx(9e5 / 0.25, rel=1e-3)
    lrs = [s["patch"]["optimizer"].get("learning_rate") for s in f["suggestions"]]
    assert lrs[0] == 0.5


def test_dead_relu_and_its_severity():
    n = 3
    dead = {"hidden1": [0.2, 0.9, 0.95], "hidden2": [0.1, 0.5, 0.6]}
    stuck = run(request(), rows([0.1] * n, dead_fraction=dead))
    f = next(f for f in stuck["findings"] if f["code"] == "dead_relu")
    assert f["severity"] == "error" and f["epoch"] == 2
    assert f["evidence"] == {"dead_fraction": 0.95, "threshold": 0.5, "hidden_layer": 1, "layers_over_threshold": 2}
    assert [s["patch"]["activation"]["name"] for s in f["suggestions"][:2]] == ["leaky_relu", "prelu"]
    fitted = run(request(), rows([0.99] * n, dead_fraction=dead))
    assert fitted["verdict"] == "healthy"
    assert next(f for f in fitted["findings"] if f["code"] == "dead_relu")["severity"] == "info"
    leaky = run(request(activation="leaky_relu"), rows([0.1] * n, dead_fraction=dead))
    assert "dead_relu" not in codes(leaky)


def test_saturated_activation_only_for_sigmoid_and_tanh():
    sat = {"hidden1": [0.7, 0.8], "hidden2": [0.1, 0.2]}
    d = run(request(activation="tanh"), rows([0.1, 0.1], saturated_fraction=sat))
    f = next(f for f in d["findings"] if f["code"] == "saturated_activation")
    assert f["evidence"]["saturated_fraction"] == 0.8 and f["suggestions"][0]["patch"]["activation"] == {
        "name": "relu"}
    assert "saturated_activation" not in codes(run(request(), rows([0.1, 0.1], saturated_fraction=sat)))


def test_poor_weight_initialization_from_the_initial_activation_variance():
    req = request(architecture={"hidden_layers": [32] * 4})
    collapsing = {"activation_variance": {"hidden1": 1.0, "hidden2": 0.1, "hidden3": 0.01, "hidden4": 0.001}}
    d = run(req, rows([0.1] * 3), initial=collapsing)
    f = next(f for f in d["findings"] if f["code"] == "poor_weight_initialization")
    assert f["evidence"]["last_to_first_activation_variance"] == pytest.approx(1e-3)
    assert f["suggestions"][0]["patch"] == {"architecture": {"init": "kaiming_normal"}}
    steady_init = {"activation_variance": {"hidden1": 1.0, "hidden2": 0.9, "hidden3": 0.8, "hidden4": 0.7}}
    assert "poor_weight_initialization" not in codes(run(req, rows([0.1] * 3), initial=steady_init))


def test_slow_convergence_when_the_loss_barely_moves():
    n = 10
    steps = {"step": [1], "epoch": [1], "loss": [2.31], "grad_norm": [0.3]}
    req = request(optimizer={"name": "sgd", "learning_rate": 1e-5})
    d = run(req, rows([0.1] * n, train_loss=steady(2.30, 2.29, n)), steps=steps)
    assert d["verdict"] == "training_problem" and "slow_convergence" in codes(d)
    f = next(f for f in d["findings"] if f["code"] == "slow_convergence")
    assert f["evidence"]["relative_decrease"] < T.SLOW_MIN_DECREASE
    patches = [s["patch"] for s in f["suggestions"]]
    assert patches[0] == {"optimizer": {"learning_rate": 0.1}}  # SGD's typical rate, not just 10x
    assert {"name": "adam", "learning_rate": 0.001, "betas": [0.9, 0.999], "eps": 1e-8}.items() <= \
        patches[1]["optimizer"].items()


def test_slow_convergence_when_still_falling_at_the_end_suggests_training_longer():
    n = 5
    d = run(request(), rows(steady(0.2, 0.45, n), train_loss=steady(2.3, 1.2, n)))
    f = next(f for f in d["findings"] if f["code"] == "slow_convergence")
    assert f["suggestions"][0]["patch"] == {"epochs": 60}


def test_oscillating_accuracy():
    zigzag = [0.5, 0.7, 0.5, 0.72, 0.52, 0.75, 0.5, 0.74]
    d = run(request(), rows(zigzag))
    assert "oscillating_loss" in codes(d)
    assert "oscillating_loss" not in codes(run(request(), rows(steady(0.5, 0.9, 8))))
    assert "oscillating_loss" not in codes(run(request(), rows(zigzag[:4])))  # too few epochs to judge


def test_one_epoch_one_hidden_layer_and_a_run_cancelled_before_its_first_epoch():
    one = request(architecture={"hidden_layers": [16]}, epochs=1)
    d = run(one, rows([0.9], grads={"hidden1": [0.2], "output": [0.3]}))
    assert d["verdict"] == "healthy"
    nothing = diagnose(one, [], None, "cancelled", DATA, limits=Limits(), resolver=None)
    assert nothing == {"verdict": None, "findings": []}


def test_findings_are_ordered_by_severity_then_importance():
    steps = {"step": [1, 2], "epoch": [1, 1], "loss": [2.3, 1e6], "grad_norm": [0.2, 5e4]}
    dead = {"hidden1": [0.99] * 6, "hidden2": [0.99] * 6}
    d = run(request(), rows([0.5, 0.1, 0.6, 0.1, 0.6, 0.1], dead_fraction=dead), steps=steps)
    severities = [f["severity"] for f in d["findings"]]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert codes(d)[:3] == ["poor_training_fit", "exploding_gradient", "dead_relu"]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", {"name": "maxout", "pieces": 3}])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "rmsprop"])
def test_every_suggested_patch_gives_a_valid_changed_request(activation, optimizer):
    req = request(activation=activation, optimizer=optimizer, architecture={"hidden_layers": [32] * 4},
                  dataset={"name": "digits", "train_samples": 100})
    n = 8
    layers = [f"hidden{i}" for i in range(1, 5)] + ["output"]
    grads = {name: [10.0 ** (i - 8)] * n for i, name in enumerate(layers)}
    extra = {"dead_fraction": {name: [0.9] * n for name in layers[:-1]},
             "saturated_fraction": {name: [0.9] * n for name in layers[:-1]}}
    scenarios = [
        rows([0.1] * n, grads=grads, **extra),
        rows(steady(0.5, 1.0, n), [0.5] * n, train_loss=steady(1, 0.01, n), val_loss=steady(1, 3, n)),
    ]
    steps = {"step": [1, 2], "epoch": [1, 1], "loss": [2.3, math.inf], "grad_norm": [0.2, 1e5]}
    initial = {"activation_variance": {n_: 10.0 ** -i for i, n_ in enumerate(layers[:-1])}}
    for rs in scenarios:
        for finding in run(req, rs, steps=steps, initial=initial)["findings"]:
            for s in finding["suggestions"]:
                patched = normalise(merge_patch(req, s["patch"]), limits=Limits(), resolver=None)
                assert patched != req, (finding["code"], s)
                assert s["why"]


def test_unnormalized_input_only_for_uploads_used_as_given():
    badly = {**DATA, "input_stats": {"abs_max": 5400.0, "mean_abs_max": 5000.0, "std_min": 0.01,
                                     "std_max": 1000.0}}
    upload = request(dataset={"id": "d" * 32})
    d = run(upload, rows([0.1] * 3), data=badly)
    assert codes(d)[:2] == ["poor_training_fit", "unnormalized_input"]
    f = d["findings"][1]
    assert f["evidence"]["input_abs_max"] == 5400.0 and f["evidence"]["feature_std_spread"] == 1e5
    assert [s["patch"] for s in f["suggestions"]] == [{"dataset": {"scale": "standard"}},
                                                      {"dataset": {"scale": "minmax"}}]
    scaled = request(dataset={"id": "d" * 32, "scale": "standard"})
    assert "unnormalized_input" not in codes(run(scaled, rows([0.1] * 3), data=badly))
    assert "unnormalized_input" not in codes(run(request(), rows([0.1] * 3), data=badly))  # built-in
    fine = {**DATA, "input_stats": {"abs_max": 3.0, "mean_abs_max": 0.1, "std_min": 0.5, "std_max": 1.2}}
    assert "unnormalized_input" not in codes(run(upload, rows([0.1] * 3), data=fine))
