"""The recipe, in order: good on the training data? Only then: good on validation data?

Never blame overfitting for a network that does not fit its training data.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from marshmallow import ValidationError

from core.settings import Limits
from core.spec import DatasetResolver, merge_patch, normalise
from workers.diagnosis import patches as P
from workers.diagnosis import regularization, symptoms
from workers.diagnosis import thresholds as T
from workers.diagnosis.evidence import Run, finite
from workers.diagnosis.findings import ERROR, INFO, SEVERITY_RANK, WARNING, finding
from workers.engine.config import JobConfig

log = logging.getLogger("trainrx.diagnosis")

# Which cause the user should act on first when several are seen: causes before the symptoms
# they produce (an explosion or too large steps before the dead units they leave; a crushing
# penalty before the slow progress under it).
CAUSE_ORDER = ["unnormalized_input", "exploding_gradient", "learning_rate_too_high", "over_regularized",
               "vanishing_gradient", "dead_relu", "saturated_activation", "poor_weight_initialization",
               "slow_convergence", "oscillating_loss", "class_imbalance"]
SEEN_BUT_HARMLESS = {"poor_weight_initialization", "dead_relu", "saturated_activation", "oscillating_loss",
                     "slow_convergence", "unnormalized_input"}
CODE_ORDER = ["poor_training_fit", *CAUSE_ORDER[:-1], "overfitting", "class_imbalance", "early_stopped"]
# Symptoms each cause produces: a symptom seen alongside its cause names it in ``caused_by``.
PRODUCES = {
    "exploding_gradient": {"dead_relu", "oscillating_loss", "saturated_activation", "slow_convergence"},
    "learning_rate_too_high": {"dead_relu", "oscillating_loss", "saturated_activation"},
    "over_regularized": {"slow_convergence", "dead_relu", "vanishing_gradient", "saturated_activation"},
}
# Causes that are about the step size: a symptom they produce puts its step-size fix first.
STEP_CAUSES = {"exploding_gradient", "learning_rate_too_high"}


def train_target(run: Run) -> float:
    """Halfway from chance to perfect (0.5 R² for regression, whose chance is 0), unless the request says."""
    target = run.target(run.train_key)
    if target is not None:
        return target
    return run.chance + T.TRAIN_FIT_FRACTION * (1 - run.chance)


def train_fit(run: Run) -> float | None:
    """The returned model's training accuracy (or R²); None when its loss was not finite."""
    row = run.returned
    return row.get(run.train_key) if row and row.get("train_loss") is not None else None


def fits_training_data(run: Run) -> bool:
    fit = train_fit(run)
    return fit is not None and fit >= train_target(run) and not run.diverged


def poor_training_fit(run: Run, causes: list[dict]) -> dict | None:
    if fits_training_data(run):
        return None
    row, train_score, target = run.returned, train_fit(run), train_target(run)
    m, label = run.metric, run.metric_label
    fixes = [s for cause in causes for s in cause["suggestions"]]
    if not causes:
        config = run.config
        fixes = [P.suggestion(P.wider(config), "A wider network has more capacity to fit the training data."),
                 P.suggestion({"epochs": min(config.epochs * 3, 10_000)}, "Train longer."),
                 P.suggestion(P.learning_rate(config, 3.0), "Larger steps reach a better fit in the same time."),
                 P.suggestion(P.deeper(config), "One more hidden layer adds capacity."),
                 P.suggestion(P.batch_size(config, 0.5), "Half the batch size: twice the steps per epoch.")]
    fixes.append(P.suggestion(P.without_regularization(run.config), "Regularisation trades fit on the training "
                              "data for generalisation: by the recipe it is a fix for overfitting, and a network "
                              "that does not fit its training data needs none until it does."))
    named = ", ".join(c["code"] for c in causes) or "no single symptom; the network may be too small or "\
                                                    "trained too briefly"
    chance = ("predicting the training mean scores R² = 0" if run.regression
              else f"chance is {run.chance:.3f}")
    return finding(
        "poor_training_fit", ERROR, row["epoch"] if row else None,
        {f"train_{m}": train_score, "threshold": target, f"chance_{m}": run.chance,
         f"val_{m}": row.get(run.val_key) if row else None, "diverged": run.diverged},
        f"The network is not good on its own training data (training {label} "
        f"{'undefined' if train_score is None else f'{train_score:.3f}'} against a bar of {target:.3f}; {chance}). "
        f"By the recipe this is a training problem, not overfitting: fix the training "
        f"before looking at validation results. Seen: {named}.", fixes)


def overfitting(run: Run) -> dict | None:
    """Judged on the fit metric's gap (accuracy, or R² for regression) and the validation loss curve."""
    row = run.returned
    m, label = run.metric, run.metric_label
    train_score, val_score = row.get(run.train_key), row.get(run.val_key)
    if train_score is None or val_score is None:
        return None
    gap = train_score - val_score
    skill = max(train_score - run.chance, 1e-9)
    relative_gap = gap / skill
    val_losses, train_losses = run.series("val_loss"), run.series("train_loss")
    finite_val = [(v, i) for i, v in enumerate(val_losses) if v is not None]
    turned, rise, min_epoch = False, 0.0, None
    if finite_val:
        best, at = min(finite_val)
        last = len(val_losses) - 1
        min_epoch = run.rows[at]["epoch"]
        if val_losses[last] is not None and best > 0:
            rise = (val_losses[last] - best) / best
            train_fell = (train_losses[last] is not None and train_losses[at] is not None
                          and train_losses[last] < train_losses[at])
            turned = rise > T.VAL_LOSS_RISE and last - at >= T.VAL_RISE_MIN_EPOCHS and train_fell
    target = run.target(run.val_key)
    below_target = target is not None and val_score < target
    if run.restored_best and not below_target:
        return None
    if not (below_target or (turned and gap >= T.OVERFIT_MIN_GAP) or relative_gap >= T.OVERFIT_RELATIVE_GAP):
        return None
    config = run.config
    fixes = []
    # The recipe's first remedy for overfitting is more training data: a request that cut its
    # training split (dataset.train_samples) gets it back first, with early stopping when none is
    # set. On the seen runs that overfit on such a cut, all the data fixed 4 of 5, early stopping
    # 4 of 5 (each missed a different one), both together 5 of 5.
    if config.dataset.train_samples is not None:
        if config.patience is None:
            fixes.append(P.suggestion({"dataset": {"train_samples": None}, "patience": 5},
                                      "Train on all the training data, with early stopping: by the recipe, more "
                                      "training data is the first remedy for overfitting, and early stopping "
                                      "returns the epoch before the validation results turn."))
        fixes.append(P.suggestion({"dataset": {"train_samples": None}}, "Train on all the training data "
                                  "instead of a subset: by the recipe, more training data is the first remedy "
                                  "for overfitting."))
    if config.patience is None:
        fixes.append(P.suggestion({"patience": 5}, "Early stopping keeps the weights of the epoch with the "
                                  "lowest validation loss instead of the last one."))
    if config.regularization.l2 < 1e-3:
        fixes.append(P.suggestion({"regularization": {"l2": 1e-3}}, "An L2 penalty shrinks the weights at "
                                  "every step, preferring simpler functions."))
    if config.regularization.dropout < 0.3:
        fixes.append(P.suggestion({"regularization": {"dropout": 0.3}}, "Dropout trains a different thinned "
                                  "network every step, so no unit can rely on memorised co-adaptations."))
    why = []
    if turned:
        why.append(f"the validation loss rose {rise:.0%} above its minimum (epoch {min_epoch}) while the "
                   "training loss kept falling")
    why.append(f"training {label} {train_score:.3f} against validation {label} {val_score:.3f}")
    if below_target:
        why.append(f"validation {label} is below the requested {target:.3f}")
    return finding(
        "overfitting", WARNING, min_epoch if turned else row["epoch"],
        {f"train_{m}": train_score, f"val_{m}": val_score, f"{m}_gap": gap,
         "relative_gap": relative_gap, "relative_gap_threshold": T.OVERFIT_RELATIVE_GAP,
         "val_loss_rise": rise, "threshold": T.VAL_LOSS_RISE, "val_loss_min_epoch": min_epoch,
         f"val_{m}_target": target},
        "The network is good on its training data but worse on validation data: "
        + "; ".join(why) + ". It has learned its training samples rather than the pattern; by the recipe, "
        "this is overfitting.", fixes)


def early_stopped(run: Run) -> dict | None:
    summary = run.summary or {}
    if not summary.get("stopped_early"):
        return None
    stopping, patience = run.config.early_stopping, run.config.patience
    restored = bool(stopping and stopping.restore_best)
    monitor = stopping.monitor if stopping else "val_loss"
    return finding(
        "early_stopped", INFO, summary.get("epochs_run"),
        {"stopped_epoch": summary.get("epochs_run"), "best_epoch": summary.get("best_epoch"),
         "patience": patience, "weights_restored": restored},
        f"Early stopping ended training at epoch {summary.get('epochs_run')}: {monitor} "
        f"had not improved for {patience} epochs. "
        + (f"The weights of the best epoch ({summary.get('best_epoch')}) were restored, so the returned model "
           "is the one from before the validation results turned." if restored else
           "The weights of the last epoch were kept (restore_best is false)."), [])


def link_causes(causes: list[dict]) -> None:
    """A symptom seen with a cause that produces it names that cause in ``caused_by`` (the first
    in CAUSE_ORDER); under a step-size cause its own step-size fix (the optimizer's) comes first."""
    for symptom in causes:
        cause = next((c["code"] for c in causes if symptom["code"] in PRODUCES.get(c["code"], ())), None)
        if cause is None:
            continue
        symptom["caused_by"] = cause
        if cause in STEP_CAUSES:
            symptom["suggestions"].sort(key=lambda s: s is None or "optimizer" not in s["patch"])


def _valid_suggestions(request: dict, item: dict, limits: Limits, resolver: DatasetResolver | None) -> dict:
    """Keep only patches that give a valid request: checked as the API will check the resubmit,
    with the limits in force and the upload's shape (a wider network may be over a cost limit).
    Each kept suggestion remembers the patched request's epochs (its expectation's horizon)."""
    kept = []
    for s in item["suggestions"]:
        try:
            patched = normalise(merge_patch(request, s["patch"]), limits=limits, resolver=resolver)
        except ValidationError:
            log.info("dropping suggestion %s: it gives an invalid request", s["patch"])
            continue
        if patched != request and s["patch"] not in [k["patch"] for k in kept]:
            kept.append({**s, "_epochs": patched["epochs"]})
    return {**item, "suggestions": kept}


def expectation(run: Run, code: str, epochs: int) -> tuple[dict, str]:
    """What a suggestion for the finding ``code`` should achieve, machine-checkable against the
    re-trained job's curves rows (core.remedy_outcome.expectation_met), and the sentence for it.
    Overfitting's fixes: a validation loss at least as low as this run's lowest. Every other
    finding is about the training: reach the training bar (train_target)."""
    if code == "overfitting":
        best = min(finite(run.series("val_loss")), default=None)
        if best is not None:
            value = float(f"{best:.4g}")
            return ({"metric": "val_loss", "op": "<=", "value": value, "within_epochs": epochs},
                    f"Expected: val_loss <= {value:g} (this run's lowest) within {epochs} epochs.")
    value = float(f"{train_target(run):.4g}")
    return ({"metric": run.train_key, "op": ">=", "value": value, "within_epochs": epochs},
            f"Expected: {run.train_key} >= {value:g} within {epochs} epochs.")


def _with_expectations(run: Run, item: dict) -> dict:
    suggestions = []
    for s in item["suggestions"]:
        epochs = s.pop("_epochs")
        expect, sentence = expectation(run, item["code"], epochs)
        suggestions.append({**s, "expect": expect, "why": f"{s['why']} {sentence}"})
    return {**item, "suggestions": suggestions}


def diagnose(config: JobConfig | Mapping[str, Any], rows: list[dict], summary: dict | None, stop_reason: str | None,
             data_info: dict | None, *, limits: Limits, resolver: DatasetResolver | None,
             steps: dict | None = None, initial: dict | None = None, final: bool = True) -> dict:
    """The verdict and findings for the job's typed config (a normalised request dict is read into
    one); ``limits`` and ``resolver`` check the suggested patches (core.spec.normalise)."""
    if not isinstance(config, JobConfig):
        config = JobConfig.from_request(config)
    run = Run(config, rows, summary, stop_reason, data_info, steps, initial, final)
    if not rows:
        return {"verdict": None, "findings": []}
    fitted = fits_training_data(run)
    causes = [f for f in (symptoms.unnormalized_input(run), symptoms.exploding_gradient(run),
                          symptoms.vanishing_gradient(run, fitted),
                          symptoms.dead_relu(run), symptoms.saturated_activation(run),
                          symptoms.poor_weight_initialization(run),
                          regularization.over_regularized(run, fitted)) if f]
    codes = {c["code"] for c in causes}
    if not codes & {"exploding_gradient", "over_regularized"}:
        too_high = symptoms.learning_rate_too_high(run, fitted)
        if too_high:
            causes.append(too_high)
    explained = {c["code"] for c in causes} & {"exploding_gradient", "learning_rate_too_high", "over_regularized",
                                               "vanishing_gradient", "dead_relu"}
    if not explained - {"over_regularized"}:
        slow = symptoms.slow_convergence(run, fitted)
        if slow:
            causes.append(slow)
    oscillating = symptoms.oscillating_loss(run)
    if oscillating and not run.diverged:
        causes.append(oscillating)
    causes.sort(key=lambda f: CAUSE_ORDER.index(f["code"]))
    link_causes(causes)
    findings: list[dict] = []
    step1 = poor_training_fit(run, causes)
    if step1:
        findings.append(step1)
        for cause in causes:
            cause["severity"] = ERROR if cause["code"] in explained or cause is causes[0] else WARNING
        verdict = "training_problem"
    else:
        # The network fits its training data: what was seen did not stop it.
        for cause in causes:
            if cause["code"] in SEEN_BUT_HARMLESS:
                cause["severity"] = INFO
        step2 = overfitting(run)
        if step2:
            findings.append(step2)
        verdict = "overfitting" if step2 else "healthy"
    findings.extend(causes)
    for extra in (symptoms.class_imbalance(run), early_stopped(run)):
        if extra:
            findings.append(extra)
    findings = [_valid_suggestions(config.request, f, limits, resolver) for f in findings]
    findings = [_with_expectations(run, f) for f in findings]
    findings.sort(key=lambda f: (SEVERITY_RANK[f["severity"]], CODE_ORDER.index(f["code"])))
    return {"verdict": verdict, "findings": findings}
