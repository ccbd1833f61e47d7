"""Real tiny trainings through the engine and the diagnosis, with no services: a small MLP
fits friedman1 (the issue's bar, validation R² >= 0.9) and is healthy; a regression run that
cannot fit is a training problem, in R², with a fix that applies to it; a deep plain CNN is a
training problem (vanishing gradients through its conv layers), never overfitting."""

from __future__ import annotations

import pytest

from core.spec import merge_patch
from workers.diagnosis import thresholds as T
from workers.local import train_and_diagnose

FRIEDMAN_MLP = {"dataset": {"name": "friedman1"}, "architecture": {"hidden_layers": [64, 64]}, "activation": "relu",
                "optimizer": {"name": "adam", "learning_rate": 0.003}, "epochs": 30, "batch_size": 64, "seed": 0}
# Six sigmoid layers with plain SGD: the recipe's vanishing gradient, on a regression target.
CANNOT_FIT = {"dataset": {"name": "friedman1"}, "architecture": {"hidden_layers": [64] * 6}, "activation": "sigmoid",
              "optimizer": {"name": "sgd", "learning_rate": 0.01}, "epochs": 10, "batch_size": 64, "seed": 0}

# The recipe's "deeper is worse on training data" network: 20 plain conv blocks (the case, two epochs).
DEEP_PLAIN_CNN = {"dataset": {"name": "digits"}, "architecture": {"type": "cnn", "conv_layers": [16] * 20,
                                                                   "hidden_layers": []},
                  "activation": "relu", "optimizer": {"name": "adam", "learning_rate": 0.001}, "epochs": 2,
                  "batch_size": 64, "seed": 0}


@pytest.fixture(scope="module")
def fitted():
    return train_and_diagnose(FRIEDMAN_MLP)


@pytest.fixture(scope="module")
def stuck():
    return train_and_diagnose(CANNOT_FIT)


def no_accuracy(keys) -> bool:
    return not any("accuracy" in key for key in keys)


def test_a_small_mlp_fits_friedman1_to_validation_r2_of_0_9_and_is_healthy(fitted):
    request, result, diagnosis = fitted
    assert request["dataset"]["task"] == "regression"
    assert result.summary["val_r2"] >= 0.9, result.summary
    assert no_accuracy(result.summary) and all(no_accuracy(row) for row in result.rows)
    assert diagnosis["verdict"] == "healthy", diagnosis
    assert not [f for f in diagnosis["findings"] if f["severity"] != "info"], diagnosis


def test_a_regression_run_that_cannot_fit_is_a_training_problem(stuck):
    request, result, diagnosis = stuck
    assert result.summary["train_r2"] < 0.5, result.summary
    assert diagnosis["verdict"] == "training_problem"
    codes = [f["code"] for f in diagnosis["findings"]]
    assert codes[0] == "poor_training_fit" and "overfitting" not in codes
    first = diagnosis["findings"][0]
    assert first["evidence"]["train_r2"] == pytest.approx(result.summary["train_r2"], abs=1e-5)
    assert first["evidence"]["threshold"] == 0.5 and first["evidence"]["chance_r2"] == 0
    assert "vanishing_gradient" in {f["code"] for f in diagnosis["findings"] if f["severity"] == "error"}
    for f in diagnosis["findings"]:
        assert no_accuracy(f["evidence"]) and "accuracy" not in f["explanation"]
    fix = first["suggestions"][0]["patch"]
    assert fix["activation"]["name"] == "relu"
    # The fix offered first is a regression request that does fit (train R² about 0.77).
    _, fixed, after = train_and_diagnose(merge_patch(request, fix))
    assert fixed.summary["train_r2"] >= 0.5 and after["verdict"] != "training_problem", fixed.summary


def test_a_deep_plain_cnn_is_a_training_problem_of_vanishing_gradients_never_overfitting():
    request, result, diagnosis = train_and_diagnose(DEEP_PLAIN_CNN)
    assert list(result.rows[-1]["grad_norm"]) == [f"conv{i}" for i in range(1, 21)] + ["output"]
    assert diagnosis["verdict"] == "training_problem", diagnosis
    codes = [f["code"] for f in diagnosis["findings"]]
    assert codes[:2] == ["poor_training_fit", "vanishing_gradient"] and "overfitting" not in codes
    vanishing = diagnosis["findings"][1]
    assert vanishing["evidence"]["first_to_last_grad_ratio"] < T.VANISHING_RATIO
    assert vanishing["evidence"]["hidden_layers"] == 20
    fixes = [s["patch"] for s in vanishing["suggestions"]]
    assert {"architecture": {"residual": True}} in fixes and {"architecture": {"init": "kaiming_normal"}} in fixes
