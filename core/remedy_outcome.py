"""Verified remedies, judged: which of a diagnosis' patches to try, and whether a re-trained
child fixed its parent's problem.

Pure Python, no torch and no Flask: the remedies service (``POST /v1/jobs/{id}/remedies``)
and ``bench/remedies.py`` judge with these same functions, so the bench measures exactly
what the service reports.

"Fixed" means two things (issue 11): the child's verdict moved forward in the recipe
(training_problem -> overfitting or healthy; overfitting -> healthy), and the metric the
finding was about improved (the training fit for a training problem; the validation loss
or the validation score at the returned epoch for overfitting).
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

TRAINING_PROBLEM, OVERFITTING, HEALTHY = "training_problem", "overfitting", "healthy"
RECIPE_STEP = {TRAINING_PROBLEM: 0, OVERFITTING: 1, HEALTHY: 2}
# A patch that changes what counts as good, or turns the diagnosis off, never counts as a fix.
UNCOUNTED_FIELDS = ("targets", "diagnose")
# The fit metrics at the returned epoch, by task; regression rows carry R² and MAE instead of accuracy.
SCORES = ("accuracy", "r2")


def canonical(patch: dict) -> str:
    return json.dumps(patch, sort_keys=True, separators=(",", ":"))


def counts_as_remedy(patch: dict) -> bool:
    """Whether re-training with ``patch`` may count as a fix: not if it touches ``targets`` or
    ``diagnose``."""
    return not any(field in patch for field in UNCOUNTED_FIELDS)


def candidate_patches(diagnosis: dict | None, limit: int | None = None) -> list[dict]:
    """The diagnosis' suggestions in its own order (findings as listed, each finding's
    suggestions as listed), deduplicated by patch, without those that cannot count as a fix.
    Each item is the suggestion as the diagnosis gave it (``patch``, ``why``, ``expect``...)."""
    seen: set[str] = set()
    out: list[dict] = []
    for item in (diagnosis or {}).get("findings") or []:
        for suggestion in item.get("suggestions") or []:
            patch = suggestion.get("patch")
            if not isinstance(patch, dict) or not patch or not counts_as_remedy(patch):
                continue
            key = canonical(patch)
            if key in seen:
                continue
            seen.add(key)
            out.append({**suggestion, "finding": item.get("code")})
            if limit is not None and len(out) >= limit:
                return out
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def outcome(summary: dict | None, diagnosis: dict | None) -> dict:
    """What a finished job reached: its verdict, and the training and validation loss and
    score (accuracy, or R² for regression) at the returned epoch. Missing or non-finite
    values are None."""
    summary = summary or {}
    out: dict[str, Any] = {"verdict": (diagnosis or {}).get("verdict")}
    for key in ("train_loss", "val_loss"):
        out[key] = _number(summary.get(key))
    for metric in SCORES:
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            if key in summary:
                out[key] = _number(summary.get(key))
    out["returned_epoch"] = summary.get("returned_epoch")
    return out


def _score_key(before: dict, after: dict, split: str) -> str | None:
    for metric in SCORES:
        key = f"{split}_{metric}"
        if key in before or key in after:
            return key
    return None


def _improved(before: float | None, after: float | None, higher_is_better: bool) -> bool:
    if after is None:
        return False
    if before is None:  # the parent's value was undefined (a diverged run): any finite value is better
        return True
    return after > before if higher_is_better else after < before


def verdict_moved_forward(before: str | None, after: str | None) -> bool:
    if before not in RECIPE_STEP or after not in RECIPE_STEP:
        return False
    return RECIPE_STEP[after] > RECIPE_STEP[before]


def is_fixed(before: dict, after: dict) -> bool:
    """Whether the child's ``after`` (an ``outcome``) fixed the parent's ``before``."""
    if not verdict_moved_forward(before.get("verdict"), after.get("verdict")):
        return False
    if before["verdict"] == TRAINING_PROBLEM:
        key = _score_key(before, after, "train")
        return key is not None and _improved(before.get(key), after.get(key), True)
    key = _score_key(before, after, "val")
    score_better = key is not None and _improved(before.get(key), after.get(key), True)
    return score_better or _improved(before.get("val_loss"), after.get("val_loss"), False)


def rates(results: Iterable[dict]) -> dict:
    """``results``: one per unhealthy run, each ``{"fixed": [bool per attempt, in order]}``.
    The share fixed by the first attempt and by the best attempt."""
    results = list(results)
    n = len(results)
    first = sum(1 for r in results if r["fixed"][:1] == [True])
    best = sum(1 for r in results if any(r["fixed"]))
    return {"runs": n, "first_fixed": first, "best_fixed": best,
            "first_rate": first / n if n else None, "best_rate": best / n if n else None}


OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def expectation_met(expect: dict | None, rows: list[dict]) -> bool | None:
    """Whether the child's curves ``rows`` met a suggestion's ``expect``
    (``{"metric", "op", "value", "within_epochs"}``): the metric satisfied ``op value`` at some
    epoch up to ``within_epochs``. None when there is no expectation to check."""
    if not expect:
        return None
    op, metric, value = OPS[expect["op"]], expect["metric"], expect["value"]
    within = expect.get("within_epochs")
    for row in rows:
        if within is not None and row.get("epoch", 0) > within:
            break
        got = _number(row.get(metric))
        if got is not None and op(got, value):
            return True
    return False
