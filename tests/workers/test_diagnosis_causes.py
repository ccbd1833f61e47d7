"""Issue 11: the diagnosis weighs every knob. Causes before symptoms: over-regularisation
(penalty share, shrinking weights, dropout's train/eval gap) and steps too large name the
symptoms they produce in ``caused_by``, and their fix comes first; every suggestion says what
it is expected to do, in a form ``core.remedy_outcome.expectation_met`` checks.

Rules on synthetic rows first, then two real tiny trainings whose first patch is re-trained
and judged with the remedies' own judge."""

from __future__ import annotations

import pytest

from core.remedy_outcome import OPS, candidate_patches, expectation_met, is_fixed, outcome
from core.spec import merge_patch
from tests.workers.test_diagnosis_rules import request, rows, run, steady
from workers.diagnosis import thresholds as T
from workers.local import train_and_diagnose

N = 20
STUCK = [0.1] * N  # chance on 10 classes


def with_evidence(rs: list[dict], penalty=None, batch_loss=None) -> list[dict]:
    """Adds the loop's per-epoch penalty and training-mode batch loss to synthetic rows."""
    for i, row in enumerate(rs):
        row["penalty"] = penalty[i] if penalty else 0.0
        row["train_batch_loss"] = batch_loss[i] if batch_loss else row["train_loss"]
    return rs


def first_patch(diagnosis: dict) -> dict:
    return candidate_patches(diagnosis, 1)[0]["patch"]


def finding(diagnosis: dict, code: str) -> dict:
    return next(f for f in diagnosis["findings"] if f["code"] == code)


def crushed(l2=1.0, dropout=0.0, **extra) -> dict:
    """A penalty that is most of the objective at first and weights shrinking 40-fold: stuck at chance."""
    req = request(regularization={"l2": l2, "dropout": dropout}, **extra)
    norms = steady(4.0, 0.1, N)
    rs = with_evidence(rows(STUCK, train_loss=[2.303] * N, weight_norm={"hidden1": norms, "hidden2": norms}),
                       penalty=steady(8.0, 0.01, N))
    return run(req, rs, steps={"step": [1], "epoch": [1], "loss": [2.303], "grad_norm": [0.5]})


def test_a_crushing_penalty_is_named_as_the_cause_and_its_removal_comes_first():
    d = crushed()
    assert d["verdict"] == "training_problem"
    over = finding(d, "over_regularized")
    assert over["severity"] == "error"
    assert over["evidence"]["penalty_share"] >= T.PENALTY_SHARE and over["evidence"]["weight_shrink"] >= 2
    assert first_patch(d) == {"regularization": {"l2": 0.0}}
    slow = [f for f in d["findings"] if f["code"] == "slow_convergence"]
    assert slow and slow[0]["caused_by"] == "over_regularized"
    patches = [c["patch"] for c in candidate_patches(d, 3)]
    assert all("optimizer" not in p for p in patches[:2]), patches  # never blames the learning rate first


def test_regularisation_that_does_not_hold_the_fit_back_is_not_blamed():
    req = request(regularization={"l2": 1e-4})
    norms = steady(4.0, 4.5, N)  # growing: the penalty is not winning
    rs = with_evidence(rows(STUCK, train_loss=[2.303] * N, weight_norm={"hidden1": norms, "hidden2": norms}),
                       penalty=[0.01] * N)
    d = run(req, rs, steps={"step": [1], "epoch": [1], "loss": [2.303], "grad_norm": [0.5]})
    assert d["verdict"] == "training_problem"
    assert "over_regularized" not in [f["code"] for f in d["findings"]]


def test_a_network_that_fits_is_never_called_over_regularized():
    req = request(regularization={"l2": 1.0})
    norms = steady(4.0, 0.5, N)
    rs = with_evidence(rows(steady(0.3, 0.95, N), weight_norm={"hidden1": norms, "hidden2": norms}),
                       penalty=[5.0] * N)
    d = run(req, rs)
    assert d["verdict"] == "healthy"
    assert "over_regularized" not in [f["code"] for f in d["findings"]]


def test_heavy_dropout_is_blamed_by_its_train_eval_gap():
    req = request(regularization={"dropout": 0.8})
    acc = steady(0.15, 0.3, N)
    loss = [2.3 * (1 - a) + 0.01 for a in acc]
    rs = with_evidence(rows(acc, train_loss=loss), batch_loss=[v * 1.4 for v in loss])
    d = run(req, rs)
    over = finding(d, "over_regularized")
    assert over["evidence"]["dropout_gap"] == pytest.approx(0.4)
    assert first_patch(d) == {"regularization": {"dropout": 0.0}}


def test_with_several_regularisers_on_all_are_lifted_first_then_the_most_blamed():
    d = crushed(l2=1.0, dropout=0.1)  # the rows show no dropout gap: the penalty is blamed
    assert finding(d, "over_regularized")["evidence"]["blamed"] == "penalty"
    patches = [c["patch"] for c in candidate_patches(d, 3)]
    # removing only the penalty would leave dropout holding the fit back
    assert patches[:2] == [{"regularization": {"l2": 0.0, "dropout": 0.0}}, {"regularization": {"l2": 0.0}}]


def test_dropout_too_heavy_to_learn_anything_is_blamed_without_a_gap():
    # Stuck near chance, and the eval-mode loss equals the training-mode one: no gap to measure.
    for dropout, blamed in ((0.95, True), (T.DROPOUT_HEAVY, False), (0.3, False)):
        req = request(activation="tanh", regularization={"dropout": dropout})
        d = run(req, with_evidence(rows(STUCK, train_loss=[2.303] * N)))
        assert d["verdict"] == "training_problem"
        assert ("over_regularized" in [f["code"] for f in d["findings"]]) is blamed, dropout
        if blamed:
            assert first_patch(d) == {"regularization": {"dropout": 0.0}}


def test_dead_relus_after_steps_too_large_name_the_step_size_and_lower_it_first():
    req = request(activation="relu", optimizer={"name": "momentum", "learning_rate": 0.5, "momentum": 0.9})
    acc = [0.25] * N
    rs = with_evidence(rows(acc, update_ratio={"hidden1": [0.98] + [0.1] * (N - 1), "hidden2": [0.97] + [0.1] * (N - 1),
                                               "output": [0.99] + [0.1] * (N - 1)},
                            dead_fraction={"hidden1": [0.9] * N, "hidden2": [0.8] * N}))
    d = run(req, rs, steps={"step": [1], "epoch": [1], "loss": [2.3], "grad_norm": [0.2]})
    dead = finding(d, "dead_relu")
    assert dead["caused_by"] == "learning_rate_too_high"
    assert "optimizer" in dead["suggestions"][0]["patch"]  # the symptom's own list puts the cause's fix first
    # momentum 0.9: the rate and the momentum come down together, then the rate alone
    assert [c["patch"] for c in candidate_patches(d, 2)] == [
        {"optimizer": {"learning_rate": 0.05, "momentum": T.LOWER_MOMENTUM}}, {"optimizer": {"learning_rate": 0.05}}]
    assert all("activation" not in c["patch"] for c in candidate_patches(d, 3))


def test_steps_too_large_without_high_momentum_lower_the_rate_alone_first():
    req = request(activation="relu", optimizer={"name": "momentum", "learning_rate": 0.5, "momentum": 0.5})
    rs = with_evidence(rows([0.25] * N, update_ratio={"hidden1": [0.98] + [0.1] * (N - 1),
                                                      "hidden2": [0.97] + [0.1] * (N - 1),
                                                      "output": [0.99] + [0.1] * (N - 1)}))
    d = run(req, rs, steps={"step": [1], "epoch": [1], "loss": [2.3], "grad_norm": [0.2]})
    assert first_patch(d) == {"optimizer": {"learning_rate": 0.05}}


def test_an_overfit_on_a_cut_training_split_gets_all_the_data_with_early_stopping_first():
    acc, val = steady(0.5, 1.0, N), steady(0.5, 0.6, N)
    rs = rows(acc, val, train_loss=steady(1, 0.01, N), val_loss=steady(1, 0.5, N // 2) + steady(0.5, 1.5, N // 2))
    cut = run(request(dataset={"name": "digits", "train_samples": 100}), rs)
    assert cut["verdict"] == "overfitting"
    assert [c["patch"] for c in candidate_patches(cut, 3)] == [
        {"dataset": {"train_samples": None}, "patience": 5}, {"dataset": {"train_samples": None}}, {"patience": 5}]
    whole = run(request(), rs)
    assert first_patch(whole) == {"patience": 5}


def test_dead_relus_after_an_explosion_name_it():
    req = request(activation="relu", optimizer={"name": "sgd", "learning_rate": 50.0})
    rs = with_evidence(rows(STUCK, dead_fraction={"hidden1": [0.95] * N, "hidden2": [0.9] * N}))
    d = run(req, rs, steps={"step": [1, 2, 3], "epoch": [1, 1, 1], "loss": [2.3, 5e5, 30.0],
                            "grad_norm": [0.2, 4e4, 1.0]})
    assert finding(d, "dead_relu")["caused_by"] == "exploding_gradient"
    assert first_patch(d) == {"optimizer": {"learning_rate": 0.5}}  # no momentum: 100 times smaller


def test_an_explosion_with_high_momentum_lowers_rate_and_momentum_together_first():
    req = request(activation="relu", optimizer={"name": "momentum", "learning_rate": 1.0, "momentum": 0.9})
    rs = with_evidence(rows(STUCK))
    d = run(req, rs, steps={"step": [1, 2, 3], "epoch": [1, 1, 1], "loss": [2.3, 5e5, 30.0],
                            "grad_norm": [0.2, 4e4, 1.0]})
    assert [c["patch"] for c in candidate_patches(d, 2)] == [
        {"optimizer": {"learning_rate": 0.1, "momentum": 0.5}}, {"optimizer": {"learning_rate": 0.01}}]


@pytest.mark.parametrize("case", ["crushed", "overfit", "dead"])
def test_every_suggestion_carries_a_well_formed_machine_checkable_expectation(case):
    if case == "crushed":
        d, epochs, metric = crushed(), 20, "train_accuracy"
    elif case == "overfit":
        n = 30
        req = request(epochs=n)
        val_loss = [1.0 - 0.04 * i for i in range(10)] + [0.64 + 0.02 * i for i in range(n - 10)]
        d = run(req, with_evidence(rows(steady(0.5, 1.0, n), val_acc=steady(0.5, 0.8, n), val_loss=val_loss)))
        assert d["verdict"] == "overfitting"
        epochs, metric = n, "val_loss"
        assert finding(d, "overfitting")["suggestions"][0]["expect"]["value"] == pytest.approx(min(val_loss))
    else:
        req = request(activation="relu", optimizer={"name": "sgd", "learning_rate": 50.0})
        d = run(req, with_evidence(rows(STUCK, dead_fraction={"hidden1": [0.95] * N, "hidden2": [0.9] * N})),
                steps={"step": [1, 2], "epoch": [1, 1], "loss": [2.3, 5e5], "grad_norm": [0.2, 4e4]})
        epochs, metric = 20, "train_accuracy"
    suggestions = [s for f in d["findings"] for s in f["suggestions"]]
    assert suggestions
    for s in suggestions:
        expect = s["expect"]
        assert set(expect) == {"metric", "op", "value", "within_epochs"}
        assert expect["op"] in OPS and isinstance(expect["value"], float)
        assert expect["within_epochs"] == merge_patch({"epochs": epochs}, s["patch"]).get("epochs", epochs)
        assert "Expected:" in s["why"] and expect["metric"] in s["why"]
    assert any(s["expect"]["metric"] == metric for s in suggestions)
    # The expectation is read off the curves rows as remedy_outcome reads it.
    target = suggestions[0]["expect"]
    good = {"epoch": 1, target["metric"]: target["value"]}
    assert expectation_met(target, [good]) is True
    assert expectation_met({**target, "within_epochs": 0}, [good]) is False


# --- real tiny trainings ---------------------------------------------------------------
# A small ReLU network on moons under an L2 penalty far too strong to fit; and ReLUs killed by
# SGD with a large step and heavy momentum. Each first patch is re-trained and judged.
OVER_REGULARIZED = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [32, 32]}, "activation": "relu",
                    "optimizer": {"name": "adam", "learning_rate": 0.01}, "regularization": {"l2": 3.0},
                    "epochs": 10, "batch_size": 64, "seed": 0}
BIG_MOMENTUM_STEP = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [32, 32]}, "activation": "relu",
                     "optimizer": {"name": "momentum", "learning_rate": 1.0, "momentum": 0.9}, "epochs": 8,
                     "batch_size": 64, "seed": 0}


def first_patch_retrained(raw: dict):
    request, result, diagnosis = train_and_diagnose(raw)
    patch = first_patch(diagnosis)
    _, child, child_diagnosis = train_and_diagnose(merge_patch(request, patch))
    return diagnosis, patch, outcome(result.summary, diagnosis), outcome(child.summary, child_diagnosis)


@pytest.fixture(scope="module")
def over_regularized_run():
    return first_patch_retrained(OVER_REGULARIZED)


@pytest.fixture(scope="module")
def big_step_run():
    return first_patch_retrained(BIG_MOMENTUM_STEP)


def test_a_real_over_regularized_run_is_diagnosed_and_its_first_patch_fixes_it(over_regularized_run):
    diagnosis, patch, before, after = over_regularized_run
    assert diagnosis["verdict"] == "training_problem"
    assert "over_regularized" in [f["code"] for f in diagnosis["findings"] if f["severity"] == "error"]
    assert patch == {"regularization": {"l2": 0.0}}
    assert is_fixed(before, after), (before, after)


def test_real_relus_killed_by_a_big_momentum_step_get_a_smaller_learning_rate_first(big_step_run):
    diagnosis, patch, before, after = big_step_run
    assert diagnosis["verdict"] == "training_problem"
    dead = [f for f in diagnosis["findings"] if f["code"] == "dead_relu"]
    assert dead and dead[0]["caused_by"] in ("learning_rate_too_high", "exploding_gradient")
    assert set(patch) == {"optimizer"} and patch["optimizer"].get("learning_rate", 1.0) < 1.0
    assert is_fixed(before, after), (before, after)


def test_a_deep_sigmoid_stack_gets_relu_he_and_batch_norm_together_first():
    layers = [f"hidden{i}" for i in range(1, 7)] + ["output"]
    grads = {name: [10.0 ** (i - 6)] * N for i, name in enumerate(layers)}
    for act, expect_first in (("sigmoid", {"activation": {"name": "relu"},
                                           "architecture": {"init": "kaiming_normal", "batch_norm": True}}),
                              ("relu", None)):
        d = run(request(activation=act, architecture={"hidden_layers": [32] * 6}), rows(STUCK, grads=grads))
        assert finding(d, "vanishing_gradient")
        if expect_first:
            patches = [c["patch"] for c in candidate_patches(d, 3)]
            assert patches[0] == expect_first
            assert patches[1:] == [{"activation": {"name": "relu"}, "architecture": {"init": "kaiming_normal"}},
                                   {"architecture": {"batch_norm": True}}]
        else:
            assert "activation" not in first_patch(d)
