"""The diagnosis on synthetic regression and CNN curves: the same recipe, read by task.

Regression rows carry train_/val_ r2 and mae and no accuracy keys; CNN rows name their
layers conv1..convN, hidden1.., output (input to output). The numbers sit clearly on
either side of the documented thresholds (workers/diagnosis/thresholds.py)."""

from __future__ import annotations

import math

import pytest

from core.settings import Limits
from core.spec import merge_patch, normalise
from workers.diagnosis import diagnose
from workers.diagnosis import thresholds as T

# Regression data info: the engine counts no classes; float targets must never be read as classes.
REG_DATA = {"classes": 0, "train_class_counts": {f"{v / 10:.1f}": 1 for v in range(300)} | {"0.0": 40}}
CLS_DATA = {"classes": 10, "train_class_counts": {str(c): 100 for c in range(10)}}
MLP_GRADS = ("hidden1", "hidden2", "output")


def regression(**overrides) -> dict:
    base = {"dataset": {"name": "friedman1"}, "architecture": {"hidden_layers": [64, 64]}, "epochs": 20}
    base.update(overrides)
    return normalise(base, limits=Limits(), resolver=None)


def cnn(conv_layers=(16,) * 6, **overrides) -> dict:
    architecture = {"type": "cnn", "conv_layers": list(conv_layers), "hidden_layers": [],
                    **overrides.pop("architecture", {})}
    base = {"dataset": {"name": "digits"}, "architecture": architecture, "epochs": 15}
    base.update(overrides)
    return normalise(base, limits=Limits(), resolver=None)


def steady(start: float, end: float, n: int) -> list[float]:
    return [start + (end - start) * i / (n - 1) for i in range(n)] if n > 1 else [end]


def curves(train, val=None, *, metric="r2", train_loss=None, val_loss=None, grads=None, **per_layer) -> list[dict]:
    """Curves rows of the task's shape: metric ``r2`` (with MAE) or ``accuracy``; the loss falls as the fit
    rises unless given; grads as {layer: [...]}, in the rows' order."""
    n = len(train)
    val = val or train
    train_loss = train_loss or [1.0 - 0.95 * max(v, 0) for v in train]
    val_loss = val_loss or [1.0 - 0.95 * max(v, 0) for v in val]
    grads = grads or {name: [0.3] * n for name in MLP_GRADS}
    out = []
    for i in range(n):
        row = {"epoch": i + 1, "train_loss": train_loss[i], "val_loss": val_loss[i], f"train_{metric}": train[i],
               f"val_{metric}": val[i], "learning_rate": 0.001, "nonfinite": False,
               "grad_norm": {k: v[i] for k, v in grads.items()}}
        if metric == "r2":
            row["train_mae"], row["val_mae"] = 3.0 * (1 - train[i]), 3.0 * (1 - val[i])
        for key, layers in per_layer.items():
            row[key] = {k: v[i] for k, v in layers.items()}
        out.append(row)
    return out


def summary_of(rs: list[dict], **extra) -> dict:
    last = rs[-1]
    keys = [k for k in last if k.startswith(("train_", "val_"))]
    return {**{k: last[k] for k in keys}, "best_epoch": last["epoch"], "epochs_run": len(rs),
            "stopped_early": False, "returned_epoch": last["epoch"], **extra}


def run(req, rs, summary=None, stop=None, steps=None, initial=None, data=None) -> dict:
    data = data if data is not None else (REG_DATA if req["dataset"]["task"] == "regression" else CLS_DATA)
    return diagnose(req, rs, summary if summary is not None else summary_of(rs), stop, data,
                    limits=Limits(), resolver=None, steps=steps, initial=initial)


def codes(d: dict) -> list[str]:
    return [f["code"] for f in d["findings"]]


def find(d: dict, code: str) -> dict:
    return next(f for f in d["findings"] if f["code"] == code)


def patches(finding: dict) -> list[dict]:
    return [s["patch"] for s in finding["suggestions"]]


def no_accuracy_anywhere(d: dict) -> bool:
    return all("accuracy" not in key and "accuracy" not in f["explanation"]
               for f in d["findings"] for key in f["evidence"])


# --- regression ---------------------------------------------------------------------

def test_the_regression_request_is_one_by_the_contract():
    req = regression()
    assert req["dataset"]["task"] == "regression" and req["loss"] == "mse"


def test_a_regression_run_that_fits_and_generalises_is_healthy():
    d = run(regression(), curves(steady(0.2, 0.95, 10), steady(0.2, 0.92, 10)))
    assert d == {"verdict": "healthy", "findings": []}


def test_a_regression_run_that_cannot_fit_is_a_training_problem_in_r2_never_overfitting():
    # Training R² barely above the mean predictor, validation far below: step 1 fails first.
    d = run(regression(), curves(steady(0.0, 0.2, 10), steady(-0.3, -0.5, 10)))
    assert d["verdict"] == "training_problem"
    assert codes(d)[0] == "poor_training_fit" and "overfitting" not in codes(d)
    f = d["findings"][0]
    assert f["evidence"]["train_r2"] == pytest.approx(0.2) and f["evidence"]["chance_r2"] == 0
    assert f["evidence"]["threshold"] == pytest.approx(0.5) and f["evidence"]["val_r2"] == pytest.approx(-0.5)
    assert "R²" in f["explanation"] and "training mean" in f["explanation"]
    assert no_accuracy_anywhere(d)


@pytest.mark.parametrize("train_r2,fits", [(0.5 - 0.01, False), (0.5 + 0.01, True)])
def test_good_on_the_training_data_is_halfway_from_the_mean_predictor_to_perfect(train_r2, fits):
    bar = 0.0 + T.TRAIN_FIT_FRACTION * (1 - 0.0)  # chance (R² of the training mean) is 0
    assert bar == 0.5
    d = run(regression(), curves(steady(0.1, train_r2, 6), steady(0.1, train_r2 - 0.02, 6)))
    assert (d["verdict"] != "training_problem") is fits


def test_targets_train_r2_and_val_r2_move_the_bars():
    rs = curves(steady(0.3, 0.8, 6), steady(0.3, 0.78, 6))
    assert run(regression(), rs)["verdict"] == "healthy"
    strict = run(regression(targets={"train_r2": 0.9}), rs)
    assert strict["verdict"] == "training_problem" and strict["findings"][0]["evidence"]["threshold"] == 0.9
    below = run(regression(targets={"val_r2": 0.85}), rs)
    assert below["verdict"] == "overfitting" and find(below, "overfitting")["evidence"]["val_r2_target"] == 0.85


def test_a_large_r2_gap_is_overfitting():
    # 0.98 on training, 0.55 on validation: (train - val) / (train - 0) = 0.44 >= 0.35.
    d = run(regression(), curves(steady(0.5, 0.98, 8), steady(0.4, 0.55, 8)))
    assert d["verdict"] == "overfitting" and codes(d) == ["overfitting"]
    f = d["findings"][0]
    assert f["evidence"]["r2_gap"] == pytest.approx(0.43)
    assert f["evidence"]["relative_gap"] == pytest.approx(0.43 / 0.98, rel=1e-5)
    assert f["evidence"]["relative_gap_threshold"] == T.OVERFIT_RELATIVE_GAP
    assert "R²" in f["explanation"] and no_accuracy_anywhere(d)
    assert {"patience", "regularization"} <= {key for p in patches(f) for key in p}


def test_a_modest_r2_gap_with_a_falling_validation_loss_is_healthy():
    # 0.95 against 0.80: relative gap 0.16, under 0.35, and the validation loss never turns.
    assert run(regression(), curves(steady(0.3, 0.95, 10), steady(0.3, 0.80, 10)))["verdict"] == "healthy"


def test_overfitting_when_the_validation_loss_turns_up_while_the_training_loss_falls():
    n = 12
    val_loss = [0.9, 0.6, 0.4, 0.3, 0.31, 0.33, 0.35, 0.37, 0.39, 0.41, 0.43, 0.45]  # +50% over its minimum
    rs = curves(steady(0.6, 0.97, n), [0.85] * n, train_loss=steady(0.5, 0.02, n), val_loss=val_loss)
    d = run(regression(), rs)
    assert d["verdict"] == "overfitting"
    f = d["findings"][0]
    assert f["epoch"] == 4 and f["evidence"]["val_loss_rise"] == pytest.approx(0.45 / 0.3 - 1, rel=1e-4)
    assert f["evidence"]["r2_gap"] == pytest.approx(0.12)
    assert "validation loss rose" in f["explanation"]
    # The same curve with the validation loss still falling: the 0.12 gap alone is not overfitting.
    flat = curves(steady(0.6, 0.97, n), [0.85] * n, train_loss=steady(0.5, 0.02, n), val_loss=steady(0.9, 0.3, n))
    assert run(regression(), flat)["verdict"] == "healthy"


def test_early_stopping_that_restored_the_best_epoch_is_not_overfitting():
    n = 8
    rs = curves([0.97] * n, [0.8] * n, train_loss=steady(0.3, 0.02, n),
                val_loss=[0.5, 0.4, 0.35, 0.3, 0.32, 0.36, 0.4, 0.45])
    req = regression(patience=4, early_stopping={"monitor": "val_r2"})
    d = run(req, rs, summary_of(rs, stopped_early=True, best_epoch=4, returned_epoch=4), stop="early_stopped")
    assert d["verdict"] == "healthy" and codes(d) == ["early_stopped"]
    assert "val_r2" in d["findings"][0]["explanation"]


def test_class_imbalance_is_never_judged_for_regression():
    skewed = {"classes": 0, "train_class_counts": {"0.0": 950, "1.5": 5}}  # what counting float targets gives
    d = run(regression(), curves(steady(0.2, 0.9, 5)), data=skewed)
    assert d["verdict"] == "healthy" and "class_imbalance" not in codes(d)


def test_oscillating_training_r2():
    zigzag = [0.6, 0.8, 0.6, 0.82, 0.62, 0.85, 0.6, 0.84]
    f = find(run(regression(), curves(zigzag)), "oscillating_loss")
    assert "R²" in f["explanation"] and f["evidence"]["swing_size"] == T.OSCILLATION_GAP
    assert "oscillating_loss" not in codes(run(regression(), curves(steady(0.5, 0.9, 8))))


def test_a_stuck_regression_loss_is_slow_convergence_from_the_first_step_or_the_mean_predictor():
    n = 10
    req = regression(optimizer={"name": "sgd", "learning_rate": 1e-5})
    rs = curves([0.01] * n, [0.0] * n, train_loss=steady(1.02, 0.99, n), val_loss=[1.0] * n)
    sampled = run(req, rs, steps={"step": [1], "epoch": [1], "loss": [1.03], "grad_norm": [0.4]})
    assert sampled["verdict"] == "training_problem"
    f = find(sampled, "slow_convergence")
    assert f["evidence"]["initial_loss"] == 1.03 and f["evidence"]["relative_decrease"] < T.SLOW_MIN_DECREASE
    assert patches(f)[0] == {"optimizer": {"learning_rate": 0.1}}
    # With probes off nothing was sampled: the loss of predicting the mean (MSE on standardised targets, 1) is the start.
    unsampled = run(req, rs)
    assert find(unsampled, "slow_convergence")["evidence"]["initial_loss"] == 1.0


def test_a_regression_explosion_is_judged_relative_to_its_own_starting_loss():
    steps = {"step": [1, 2, 3], "epoch": [1, 1, 1], "loss": [1.1, 40.0, 5e3], "grad_norm": [0.5, 30.0, 2e3]}
    d = run(regression(optimizer={"name": "sgd", "learning_rate": 5.0}), curves([-3.0] * 4), steps=steps)
    assert codes(d)[:2] == ["poor_training_fit", "exploding_gradient"]
    assert find(d, "exploding_gradient")["evidence"]["grad_norm_growth"] == pytest.approx(4e3)


def test_a_network_that_cannot_fit_is_offered_to_drop_its_regularisation():
    n = 6
    heavy = regression(regularization={"l2": 5.0, "dropout": 0.5})
    d = run(heavy, curves([0.01] * n, [0.0] * n, train_loss=[0.99] * n, val_loss=[1.0] * n),
            steps={"step": [1], "epoch": [1], "loss": [1.02], "grad_norm": [0.4]})
    assert d["verdict"] == "training_problem"
    assert {"regularization": {"l2": 0.0, "dropout": 0.0}} in patches(d["findings"][0])
    plain = run(regression(), curves([0.01] * n, [0.0] * n, train_loss=[0.99] * n, val_loss=[1.0] * n))
    assert not any("regularization" in p for p in patches(plain["findings"][0]))


def test_deep_sigmoid_regression_that_cannot_fit_is_vanishing_gradient_with_an_activation_fix():
    n = 6
    layers = [f"hidden{i}" for i in range(1, 9)] + ["output"]
    grads = {name: [10.0 ** (i - 8)] * n for i, name in enumerate(layers)}
    req = regression(architecture={"hidden_layers": [64] * 8}, activation="sigmoid",
                     optimizer={"name": "sgd", "learning_rate": 0.01})
    d = run(req, curves([0.02] * n, [0.0] * n, grads=grads))
    assert d["verdict"] == "training_problem"
    assert codes(d)[:2] == ["poor_training_fit", "vanishing_gradient"]
    assert patches(find(d, "vanishing_gradient"))[0]["activation"]["name"] == "relu"


SCENARIOS = ("stuck", "overfit", "zigzag")


def scenario(name: str, layers: list[str], metric: str) -> list[dict]:
    n = 8
    grads = {layer: [10.0 ** (i - len(layers))] * n for i, layer in enumerate(layers)}
    if name == "stuck":
        probes = {"dead_fraction": {k: [0.9] * n for k in layers[:-1]},
                  "saturated_fraction": {k: [0.9] * n for k in layers[:-1]}}
        return curves([0.05] * n, metric=metric, grads=grads, **probes)
    if name == "overfit":
        return curves(steady(0.5, 1.0, n), [0.5] * n, metric=metric, train_loss=steady(1, 0.01, n),
                      val_loss=steady(1, 3, n))
    return curves([0.6, 0.8, 0.6, 0.82, 0.62, 0.85, 0.6, 0.84], metric=metric)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", {"name": "maxout", "pieces": 3}])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["regression", "cnn"])
def test_every_suggested_patch_gives_a_valid_changed_request_of_the_same_task(kind, activation, optimizer):
    common = {"activation": activation, "optimizer": optimizer}
    if kind == "regression":
        req = regression(architecture={"hidden_layers": [32] * 4}, dataset={"name": "friedman1", "train_samples": 100},
                         **common)
        layers, metric = [f"hidden{i}" for i in range(1, 5)] + ["output"], "r2"
    else:
        req = cnn([8, 8, {"channels": 16, "pool": "max"}, 16], architecture={"hidden_layers": [16]}, **common)
        layers, metric = ["conv1", "conv2", "conv3", "conv4", "hidden1", "output"], "accuracy"
    steps = {"step": [1, 2], "epoch": [1, 1], "loss": [1.0, math.inf], "grad_norm": [0.2, 1e5]}
    initial = {"activation_variance": {name: 10.0 ** -i for i, name in enumerate(layers[:-1])}}
    offered = 0
    for name in SCENARIOS:
        for finding in run(req, scenario(name, layers, metric), steps=steps, initial=initial)["findings"]:
            for s in finding["suggestions"]:
                patched = normalise(merge_patch(req, s["patch"]), limits=Limits(), resolver=None)
                assert patched != req and s["why"], (finding["code"], s)
                assert patched["dataset"]["task"] == req["dataset"]["task"]
                monitor = (patched.get("early_stopping") or {}).get("monitor")
                assert kind != "regression" or monitor in (None, "val_loss", "val_r2", "val_mae"), s
                offered += 1
    assert offered


# --- CNN ----------------------------------------------------------------------------

def conv_grads(n: int, conv: int, dense: int = 0, *, shrink: float) -> dict[str, list[float]]:
    """Per-layer gradient norms, input to output, each layer ``shrink`` times the next one's."""
    names = [f"conv{i}" for i in range(1, conv + 1)] + [f"hidden{i}" for i in range(1, dense + 1)] + ["output"]
    return {name: [0.5 * shrink ** (len(names) - 1 - i)] * n for i, name in enumerate(names)}


def test_vanishing_gradients_in_a_deep_plain_cnn_are_a_training_problem_never_overfitting():
    n = 10
    grads = conv_grads(n, 12, shrink=0.4)  # conv1's norm is 0.4^12 ~ 2e-5 of the output's
    # Training accuracy at chance and a validation accuracy that is no better: step 1 fails.
    d = run(cnn([16] * 12), curves([0.1] * n, [0.09] * n, metric="accuracy", grads=grads))
    assert d["verdict"] == "training_problem" and "overfitting" not in codes(d)
    assert codes(d)[:2] == ["poor_training_fit", "vanishing_gradient"]
    f = find(d, "vanishing_gradient")
    assert f["evidence"]["first_to_last_grad_ratio"] == pytest.approx(0.4 ** 12, rel=1e-3)
    assert f["evidence"]["hidden_layers"] == 12 and f["severity"] == "error"
    fixes = patches(f)
    assert {"architecture": {"residual": True}} in fixes  # equal-channel blocks at stride 1 without pooling
    assert {"architecture": {"batch_norm": True}} in fixes


def test_the_same_depth_that_trains_is_not_called_a_training_problem():
    n = 10
    d = run(cnn([16] * 12, architecture={"residual": True}),
            curves(steady(0.3, 0.9, n), steady(0.3, 0.86, n), metric="accuracy", grads=conv_grads(n, 12, shrink=0.9)))
    assert d["verdict"] == "healthy" and d["findings"] == []


def test_cnn_rules_follow_the_row_order_from_conv1_to_output():
    # The first layer is conv1 (not hidden1): the ratio is conv1 against output, through the dense head.
    n = 5
    grads = conv_grads(n, 4, dense=2, shrink=0.2)
    d = run(cnn([16] * 4, architecture={"hidden_layers": [32, 32]}),
            curves([0.1] * n, metric="accuracy", grads=grads))
    f = find(d, "vanishing_gradient")
    assert f["evidence"]["first_to_last_grad_ratio"] == pytest.approx(0.2 ** 6, rel=1e-3)
    assert f["evidence"]["first_layer_grad_norm"] == pytest.approx(grads["conv1"][0])
    # Small conv gradients with a large dense head's are the input side too, whatever the names.
    reordered = {"conv1": [1e-6] * n, "conv2": [1e-5] * n, "hidden1": [0.3] * n, "output": [0.5] * n}
    assert "vanishing_gradient" in codes(run(cnn([16, 16], architecture={"hidden_layers": [32]}),
                                             curves([0.1] * n, metric="accuracy", grads=reordered)))


def test_dead_channels_are_named_by_their_conv_layer():
    n = 3
    dead = {"conv1": [0.1] * n, "conv2": [0.2, 0.7, 0.8], "conv3": [0.1] * n}
    d = run(cnn([16] * 3), curves([0.1] * n, metric="accuracy", grads=conv_grads(n, 3, shrink=1.0),
                                  dead_fraction=dead))
    f = find(d, "dead_relu")
    assert f["evidence"]["dead_fraction"] == 0.8 and f["evidence"]["hidden_layer"] == 2 and f["epoch"] == 2
    assert "conv layer 2" in f["explanation"]


def test_residual_is_suggested_only_where_a_block_keeps_its_input_shape():
    n = 5
    shrinking = [{"channels": 8, "pool": "max"}, {"channels": 16, "pool": "max"}, {"channels": 32, "stride": 2}]
    d = run(cnn(shrinking), curves([0.1] * n, metric="accuracy", grads=conv_grads(n, 3, shrink=0.01)))
    assert not any(p.get("architecture", {}).get("residual") for f in d["findings"] for p in patches(f))


def test_a_cnn_that_does_not_fit_with_no_symptom_is_offered_wider_convolutions():
    # The loss fell well below its start and then levelled off: not slow, not still falling; nothing vanishes.
    rs = curves([0.15, 0.25, 0.3, 0.3, 0.3, 0.3], metric="accuracy", train_loss=[2.0, 1.5, 1.3, 1.3, 1.3, 1.3],
                grads=conv_grads(6, 2, shrink=1.0))
    d = run(cnn([8, {"channels": 8, "pool": "max"}]), rs,
            steps={"step": [1], "epoch": [1], "loss": [2.3], "grad_norm": [0.3]})
    assert d["verdict"] == "training_problem"
    widen = next(p for p in patches(d["findings"][0]) if "conv_layers" in p.get("architecture", {}))
    assert [b["channels"] for b in widen["architecture"]["conv_layers"]] == [16, 16]
    assert widen["architecture"]["conv_layers"][1]["pool"] == "max"
