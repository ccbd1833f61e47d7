"""The comparison diagnosis on synthetic results tables: a real difference against the seed
spread is reported, the same difference inside a wide spread is not."""

from __future__ import annotations

import statistics

from core.sweep_comparison import compare
from core.sweep_results import stats

BASE = {"dataset": {"name": "moons", "task": "classification"}, "activation": {"name": "sigmoid"},
        "architecture": {"hidden_layers": [16], "residual": False, "batch_norm": False},
        "regularization": {"l1": 0.0, "l2": 0.0, "dropout": 0.0}, "seed": 0, "epochs": 20}


def row(number: int, values: dict, **seeds: list[float]) -> dict:
    """A results row whose metrics are the statistics of the given per-seed values."""
    metrics = {key: stats(seeds.get(key, [])) for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy")}
    return {"combination": number, "values": values, "metrics": metrics}


def request(**changes) -> dict:
    req = {**BASE, **{k: v for k, v in changes.items() if k not in ("hidden_layers", "reg")}}
    req["architecture"] = {**BASE["architecture"], "hidden_layers": changes.get("hidden_layers", [16])}
    req["regularization"] = {**BASE["regularization"], **changes.get("reg", {})}
    return req


def codes(result: dict) -> list[str]:
    return [f["code"] for f in result["findings"]]


def test_a_deeper_network_that_fits_training_data_worse_beyond_the_spread_is_degradation():
    rows = [row(0, {"architecture.hidden_layers": [16]}, train_accuracy=[0.90, 0.91, 0.89], val_accuracy=[0.88] * 3),
            row(1, {"architecture.hidden_layers": [16] * 6}, train_accuracy=[0.70, 0.72, 0.69],
                val_accuracy=[0.69] * 3)]
    result = compare(rows, [request(), request(hidden_layers=[16] * 6)])
    assert codes(result) == ["degradation"]
    finding = result["findings"][0]
    assert [c["combination"] for c in finding["combinations"]] == [1, 0]
    assert finding["evidence"]["deeper_layers"] == 6 and finding["evidence"]["shallower_layers"] == 1
    expected_gap = statistics.fmean([0.90, 0.91, 0.89]) - statistics.fmean([0.70, 0.72, 0.69])
    assert abs(finding["evidence"]["difference"] - expected_gap) < 1e-6
    assert "not overfitting" in finding["explanation"]
    patches = [s["patch"] for s in finding["suggestions"]]
    assert {"architecture": {"residual": True}} in patches and {"architecture": {"batch_norm": True}} in patches
    assert {"activation": "relu"} in patches


def test_the_same_gap_inside_a_wide_seed_spread_is_not_reported():
    rows = [row(0, {"architecture.hidden_layers": [16]}, train_accuracy=[0.95, 0.60, 0.98]),
            row(1, {"architecture.hidden_layers": [16] * 6}, train_accuracy=[0.55, 0.92, 0.62])]
    assert compare(rows, [request(), request(hidden_layers=[16] * 6)])["findings"] == []


def test_a_deeper_network_that_fits_better_or_differs_in_more_than_depth_is_not_degradation():
    better = [row(0, {"d": 1}, train_accuracy=[0.80, 0.81]), row(1, {"d": 6}, train_accuracy=[0.95, 0.96])]
    assert compare(better, [request(), request(hidden_layers=[16] * 6)])["findings"] == []
    other = [row(0, {}, train_accuracy=[0.90, 0.91]), row(1, {}, train_accuracy=[0.60, 0.61])]
    assert compare(other, [request(), request(hidden_layers=[16] * 6, epochs=2)])["findings"] == []


def test_a_regularizer_that_lowers_validation_loss_beyond_the_spread_helped():
    rows = [row(0, {"regularization.l2": 0.0}, val_loss=[0.50, 0.52, 0.51], val_accuracy=[0.80, 0.81, 0.80]),
            row(1, {"regularization.l2": 0.01}, val_loss=[0.40, 0.41, 0.42], val_accuracy=[0.85, 0.86, 0.85]),
            row(2, {"regularization.dropout": 0.5}, val_loss=[0.50, 0.53, 0.49], val_accuracy=[0.80, 0.80, 0.81])]
    requests = [request(), request(reg={"l2": 0.01}), request(reg={"dropout": 0.5})]
    (finding,) = compare(rows, requests)["findings"]
    assert finding["code"] == "regularization_effect"
    effects = {c["combination"]: c["effect"] for c in finding["evidence"]["compared"]}
    assert effects == {1: "helped", 2: "within noise"}
    assert finding["evidence"]["best"] == 1 and finding["evidence"]["baseline"]["combination"] == 0
    helped = next(c for c in finding["evidence"]["compared"] if c["combination"] == 1)
    assert abs(helped["difference"] - (0.51 - 0.41)) < 1e-6 and helped["spread"] > 0
    assert finding["suggestions"][0]["patch"] == {"regularization": {"l1": 0.0, "l2": 0.01, "dropout": 0.0}}
    assert "within noise" in finding["explanation"] and "l2=0.01" in finding["explanation"]


def test_a_regularization_difference_inside_the_seed_spread_is_within_noise():
    rows = [row(0, {}, val_loss=[0.50, 0.30, 0.70]), row(1, {}, val_loss=[0.45, 0.25, 0.66])]
    (finding,) = compare(rows, [request(), request(reg={"l1": 0.001})])["findings"]
    assert [c["effect"] for c in finding["evidence"]["compared"]] == ["within noise"]
    assert finding["suggestions"] == [] and finding["evidence"]["best"] is None
