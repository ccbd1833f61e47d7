"""The issue's acceptance runs at engine level, with the requests of ``examples/``: on mnist1d a
small 1-D CNN reaches 0.90 test accuracy where its MLP counterpart stays well below; a deep plain
CNN stays near chance on its training data where the same depth with residual connections trains;
friedman1 with a small MLP reaches a validation R² of 0.9. Each request runs once per module."""

from __future__ import annotations

import pytest

from workers.engine import loop
from tests.workers.model_requests import config_for, data_for, example

CHANCE_DIGITS = 0.1  # ten balanced classes


def _run(name: str) -> loop.RunResult:
    config = config_for(example(name))
    return loop.run(config, data_for(config))


@pytest.fixture(scope="module")
def runs() -> dict[str, loop.RunResult]:
    names = ["mnist1d-cnn.json", "mnist1d-mlp.json", "deep-cnn-plain-digits.json", "deep-cnn-residual-digits.json",
             "friedman1-mlp.json"]
    return {name: _run(name) for name in names}


def test_on_mnist1d_a_small_cnn_beats_its_mlp_counterpart(runs):
    cnn, mlp = runs["mnist1d-cnn.json"].summary, runs["mnist1d-mlp.json"].summary
    assert cnn["test_accuracy"] >= 0.90
    assert mlp["test_accuracy"] <= 0.80 and cnn["test_accuracy"] - mlp["test_accuracy"] >= 0.15
    assert example("mnist1d-mlp.json")["optimizer"] == example("mnist1d-cnn.json")["optimizer"]


def test_a_deep_plain_cnn_stays_near_chance_on_training_data_and_the_residual_one_trains(runs):
    plain, residual = runs["deep-cnn-plain-digits.json"], runs["deep-cnn-residual-digits.json"]
    # Near chance (0.1), and far below the residual network: where in 0.1-0.3 the plain one ends
    # depends on the CPU's rounding (at most 0.2 on the machine that chose these numbers, 0.28 on an AMD EPYC).
    plain_best = max(row["train_accuracy"] for row in plain.rows)
    assert plain_best <= CHANCE_DIGITS + 0.2
    assert residual.summary["train_accuracy"] >= 0.5 and residual.summary["train_accuracy"] - plain_best >= 0.25
    assert sum(block.residual for block in residual.model.conv) == 19 and not any(b.residual for b in plain.model.conv)
    assert list(plain.rows[-1]["grad_norm"])[:2] == ["conv1", "conv2"]


def test_friedman1_with_a_small_mlp_reaches_a_validation_r2_of_0_9(runs):
    summary = runs["friedman1-mlp.json"].summary
    assert summary["val_r2"] >= 0.9 and summary["train_r2"] >= 0.9
    assert "val_accuracy" not in summary
