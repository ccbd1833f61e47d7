"""The remedy judge: which patches are tried, and what counts as fixed."""

from core.remedy_outcome import candidate_patches, is_fixed, outcome, rates


def _diagnosis(*findings):
    return {"verdict": "training_problem", "findings": [
        {"code": code, "suggestions": [{"patch": p, "why": "w"} for p in patches]} for code, patches in findings]}


def test_candidates_keep_the_diagnosis_order_drop_duplicates_and_uncounted_fields():
    d = _diagnosis(("poor_training_fit", [{"regularization": {"l2": 0}}, {"targets": {"train_accuracy": 0.1}}]),
                   ("slow_convergence", [{"optimizer": {"learning_rate": 0.1}}, {"regularization": {"l2": 0}},
                                         {"diagnose": False}, {"epochs": 60}]))
    got = [c["patch"] for c in candidate_patches(d)]
    assert got == [{"regularization": {"l2": 0}}, {"optimizer": {"learning_rate": 0.1}}, {"epochs": 60}]
    assert [c["finding"] for c in candidate_patches(d, limit=2)] == ["poor_training_fit", "slow_convergence"]
    assert candidate_patches(None) == [] and candidate_patches({"findings": []}, 3) == []


def test_a_training_problem_is_fixed_only_when_the_verdict_moves_on_and_the_training_fit_improves():
    before = outcome({"train_loss": 2.3, "val_loss": 2.3, "train_accuracy": 0.1, "val_accuracy": 0.1},
                     {"verdict": "training_problem"})
    better = outcome({"train_loss": 0.1, "val_loss": 0.9, "train_accuracy": 0.99, "val_accuracy": 0.8},
                     {"verdict": "overfitting"})
    assert is_fixed(before, better)
    assert not is_fixed(before, {**better, "verdict": "training_problem"})  # verdict did not move
    assert not is_fixed(before, {**better, "train_accuracy": 0.05})  # verdict moved, fit did not improve
    assert not is_fixed(before, {**better, "verdict": None})


def test_overfitting_is_fixed_by_a_healthy_child_with_a_better_validation_loss_or_score():
    before = outcome({"train_loss": 0.0, "val_loss": 0.7, "train_accuracy": 1.0, "val_accuracy": 0.84},
                     {"verdict": "overfitting"})
    assert is_fixed(before, {**before, "verdict": "healthy", "val_loss": 0.5})
    assert is_fixed(before, {**before, "verdict": "healthy", "val_accuracy": 0.9, "val_loss": 0.8})
    assert not is_fixed(before, {**before, "verdict": "healthy"})  # nothing improved
    assert not is_fixed(before, {**before, "verdict": "overfitting", "val_loss": 0.1})


def test_regression_uses_r2_and_a_diverged_parent_counts_any_finite_fit_as_better():
    before = outcome({"train_loss": float("nan"), "val_loss": None, "train_r2": float("nan"), "val_r2": None},
                     {"verdict": "training_problem"})
    assert before["train_r2"] is None and before["train_loss"] is None
    after = outcome({"train_loss": 0.2, "val_loss": 0.3, "train_r2": 0.8, "val_r2": 0.7}, {"verdict": "healthy"})
    assert is_fixed(before, after)


def test_rates_count_first_and_best_attempts():
    got = rates([{"fixed": [True, False]}, {"fixed": [False, True]}, {"fixed": [False, False, False]},
                 {"fixed": []}])
    assert got == {"runs": 4, "first_fixed": 1, "best_fixed": 2, "first_rate": 0.25, "best_rate": 0.5}


def test_an_expectation_is_met_only_within_its_epochs():
    from core.remedy_outcome import expectation_met
    rows = [{"epoch": 1, "train_accuracy": 0.3}, {"epoch": 2, "train_accuracy": None},
            {"epoch": 3, "train_accuracy": 0.6}]
    expect = {"metric": "train_accuracy", "op": ">=", "value": 0.55, "within_epochs": 3}
    assert expectation_met(expect, rows) is True
    assert expectation_met({**expect, "within_epochs": 2}, rows) is False
    assert expectation_met({"metric": "val_loss", "op": "<", "value": 1.0, "within_epochs": 5}, rows) is False
    assert expectation_met(None, rows) is None
