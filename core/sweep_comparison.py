"""The comparison diagnosis of a sweep: what one job's diagnosis cannot see, because it takes
two runs that differ in one thing.

- ``degradation``: a deeper network (more hidden layers or conv blocks, everything else equal)
  fits its *training* data worse than a shallower one, by more than the seed spread. Overfitting
  would do the opposite (a better training fit), so this is an optimisation difficulty: the
  recipe's 56- vs 20-layer networks. Suggests skip connections, batch normalisation, or an
  activation that keeps gradients alive.
- ``regularization_effect``: combinations that differ only in their regularization. Says which
  one helped validation (loss, and score) against the least regularized one, by how much, and
  with the seed spread, so that a difference inside the noise is called that, not a win.

A difference counts when it is larger than ``max(2 x pooled std over seeds, a floor)``: twice the
spread of either side's seeds, and never less than a floor (one seed has no spread), so that
noise is not reported as a result. Deterministic, pure Python; computed on every GET.
"""

from __future__ import annotations

import math
from typing import Any

WARNING, INFO = "warning", "info"
# The smallest difference reported: two points of training accuracy (or R²); for losses, a share
# of the better one's value, since losses have no common scale across datasets.
SCORE_FLOOR = 0.02
LOSS_FLOOR = 0.05  # training loss (degradation without a score)
VAL_LOSS_FLOOR = 0.01  # validation loss (regularization_effect): 1 % of the baseline's
SPREADS = 2.0  # a difference must exceed this many pooled standard deviations
SATURATING = ("sigmoid", "tanh")
REGULARIZERS = ("l1", "l2", "dropout")


def compare(rows: list[dict], requests: list[dict]) -> dict:
    """``rows``: the results table (core/sweep_results.py); ``requests[i]``: row i's request."""
    findings = degradation(rows, requests) + regularization_effect(rows, requests)
    return {"findings": findings}


# --- shared ---------------------------------------------------------------

def _mean(row: dict, key: str) -> float | None:
    metric = row["metrics"].get(key) or {}
    return metric.get("mean") if metric.get("n") else None


def _spread(a: dict, b: dict, key: str) -> float:
    """The pooled sample std of the two rows' seeds (0 when each has one seed)."""
    sa, sb = (row["metrics"][key].get("std") or 0.0 for row in (a, b))
    return math.sqrt((sa ** 2 + sb ** 2) / 2)


def _score_key(row: dict, split: str) -> str:
    return next(k for k in row["metrics"] if k.startswith(f"{split}_") and not k.endswith("_loss"))


def _without(request: dict, *paths: tuple[str, ...]) -> dict:
    """The request minus the seed, the name and ``paths``: what must be equal for two runs to compare."""
    rest = {k: v for k, v in request.items() if k not in ("seed", "name")}
    for path in paths:
        node = rest
        for key in path[:-1]:
            node[key] = dict(node.get(key) or {})
            node = node[key]
        node.pop(path[-1], None)
    return rest


def _groups(requests: list[dict], *paths: tuple[str, ...]) -> list[list[int]]:
    """Indices of the rows whose requests are equal but for ``paths``, groups of two or more."""
    groups: dict[str, list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault(repr(_sorted(_without(request, *paths))), []).append(i)
    return [members for members in groups.values() if len(members) > 1]


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((k, _sorted(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _number(value: Any) -> Any:
    return float(f"{value:.6g}") if isinstance(value, float) and math.isfinite(value) else value


def _named(row: dict) -> dict:
    return {"combination": row["combination"], "values": row["values"]}


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4g} ± {std:.2g}"


def _finding(code: str, severity: str, evidence: dict, explanation: str, suggestions: list[dict],
             rows: list[dict]) -> dict:
    return {"code": code, "severity": severity, "epoch": None,
            "evidence": {k: _number(v) for k, v in evidence.items()}, "explanation": explanation,
            "suggestions": suggestions, "combinations": [_named(row) for row in rows]}


# --- degradation ----------------------------------------------------------

def depth(request: dict) -> int:
    arch = request.get("architecture") or {}
    return len(arch.get("hidden_layers") or []) + len(arch.get("conv_layers") or [])


def degradation(rows: list[dict], requests: list[dict]) -> list[dict]:
    findings = []
    for members in _groups(requests, ("architecture", "hidden_layers"), ("architecture", "conv_layers")):
        for deep in sorted(members, key=lambda i: -depth(requests[i])):
            worse = [(gap, i, key, threshold) for i in members if depth(requests[i]) < depth(requests[deep])
                     for gap, key, threshold in [_fit_gap(rows[deep], rows[i])] if gap is not None and gap > threshold]
            if worse:
                gap, shallow, key, threshold = max(worse, key=lambda w: (w[0], -w[1]))
                findings.append(_degradation(rows[deep], rows[shallow], requests[deep], requests[shallow], key,
                                             gap, threshold))
    return findings


def _fit_gap(deep: dict, shallow: dict) -> tuple[float | None, str, float]:
    """How much worse the deeper row fits its training data (positive: worse), on the training
    score when there is one, else the training loss; and the threshold it must exceed."""
    key = _score_key(deep, "train")
    d, s = _mean(deep, key), _mean(shallow, key)
    if d is not None and s is not None:
        return s - d, key, max(SPREADS * _spread(deep, shallow, key), SCORE_FLOOR)
    key = "train_loss"
    d, s = _mean(deep, key), _mean(shallow, key)
    if d is None or s is None:
        return None, key, 0.0
    return d - s, key, max(SPREADS * _spread(deep, shallow, key), LOSS_FLOOR * abs(s))


def _layers(n: int) -> str:
    return f"{n} layer{'s' if n != 1 else ''}"


def _degradation(deep: dict, shallow: dict, deep_request: dict, shallow_request: dict, key: str, gap: float,
                 threshold: float) -> dict:
    dm, sm = deep["metrics"][key], shallow["metrics"][key]
    dd, sd = depth(deep_request), depth(shallow_request)
    arch = deep_request.get("architecture") or {}
    activation = (deep_request.get("activation") or {}).get("name")
    suggestions = []
    if not arch.get("residual"):
        suggestions.append({"patch": {"architecture": {"residual": True}},
                            "why": "Skip connections let a deep network start from the identity, so extra layers "
                                   "cannot make the training fit worse than a shallower one's."})
    if not arch.get("batch_norm"):
        suggestions.append({"patch": {"architecture": {"batch_norm": True}},
                            "why": "Batch normalisation keeps each layer's inputs in range, so gradients reach the "
                                   "early layers of a deep network."})
    if activation in SATURATING:
        suggestions.append({"patch": {"activation": "relu"},
                            "why": f"{activation} saturates and its gradient shrinks layer after layer; ReLU's "
                                   "does not, where the unit is active."})
    seeds = min(dm["n"], sm["n"])
    explanation = (
        f"The deeper network ({_layers(dd)}) fits its training data worse than the shallower one ({_layers(sd)}): "
        f"{key} {_fmt(dm['mean'], dm['std'])} vs {_fmt(sm['mean'], sm['std'])} (mean ± std over "
        f"{seeds} seed{'s' if seeds != 1 else ''} or more), a difference of {gap:.3g}, beyond the seed spread "
        f"(threshold {threshold:.3g}). This is not overfitting, which would fit the training data better: it is an "
        "optimisation difficulty, the recipe's 56- vs 20-layer networks. The deeper network could represent the "
        "shallower one, but training does not find it.")
    evidence = {"metric": key, "deeper_layers": dd, "shallower_layers": sd, "deeper_mean": dm["mean"],
                "deeper_std": dm["std"], "shallower_mean": sm["mean"], "shallower_std": sm["std"],
                "difference": gap, "threshold": threshold, "seeds": seeds}
    return _finding("degradation", WARNING, evidence, explanation, suggestions, [deep, shallow])


# --- regularization -------------------------------------------------------

def _regularization(request: dict) -> dict:
    reg = request.get("regularization") or {}
    return {k: reg.get(k, 0.0) or 0.0 for k in REGULARIZERS}


def _describe(reg: dict) -> str:
    used = [f"{k}={v:g}" for k, v in reg.items() if v]
    return ", ".join(used) if used else "no regularization"


def regularization_effect(rows: list[dict], requests: list[dict]) -> list[dict]:
    findings = []
    for members in _groups(requests, ("regularization",)):
        members = [i for i in members if _mean(rows[i], "val_loss") is not None]
        regs = {i: _regularization(requests[i]) for i in members}
        if len({repr(sorted(r.items())) for r in regs.values()}) < 2:
            continue
        base = min(members, key=lambda i: (sum(1 for v in regs[i].values() if v), sum(regs[i].values()), i))
        compared = [_effect(rows[base], rows[i], regs[i]) for i in members if i != base]
        findings.append(_regularization_finding(rows[base], regs[base], compared,
                                                [rows[base]] + [rows[i] for i in members if i != base]))
    return findings


def _effect(base: dict, row: dict, reg: dict) -> dict:
    """How ``row`` did on validation against ``base``: positive ``difference`` = lower val loss."""
    bm, rm = base["metrics"]["val_loss"], row["metrics"]["val_loss"]
    difference = bm["mean"] - rm["mean"]
    spread = max(SPREADS * _spread(base, row, "val_loss"), VAL_LOSS_FLOOR * abs(bm["mean"]))
    effect = "helped" if difference > spread else "hurt" if difference < -spread else "within noise"
    score = _score_key(row, "val")
    score_difference = (None if _mean(row, score) is None or _mean(base, score) is None
                        else _mean(row, score) - _mean(base, score))
    return {"combination": row["combination"], "values": row["values"], "regularization": reg,
            "val_loss_mean": _number(rm["mean"]), "val_loss_std": _number(rm["std"]),
            "difference": _number(difference), "spread": _number(spread), "effect": effect,
            f"{score}_difference": _number(score_difference)}


def _regularization_finding(base: dict, base_reg: dict, compared: list[dict], rows: list[dict]) -> dict:
    bm = base["metrics"]["val_loss"]
    helped = sorted((c for c in compared if c["effect"] == "helped"), key=lambda c: -c["difference"])
    sentences = []
    for c in compared:
        what = {"helped": f"lowered the validation loss by {c['difference']:.3g}",
                "hurt": f"raised the validation loss by {-c['difference']:.3g}",
                "within noise": f"changed the validation loss by {-c['difference']:+.3g}, within noise"}[c["effect"]]
        sentences.append(f"{_describe(c['regularization'])} {what} (seed spread {c['spread']:.3g}; val_loss "
                         f"{_fmt(c['val_loss_mean'], c['val_loss_std'])})")
    best = helped[0] if helped else None
    explanation = (f"Against {_describe(base_reg)} (val_loss {_fmt(bm['mean'], bm['std'])}): "
                   + "; ".join(sentences) + ". "
                   + (f"{_describe(best['regularization'])} helped validation most." if best else
                      "No regularizer helped validation beyond the seed spread."))
    suggestions = [] if best is None else [{
        "patch": {"regularization": best["regularization"]},
        "why": f"{_describe(best['regularization'])} lowered the validation loss by {best['difference']:.3g}, "
               f"more than the seed spread ({best['spread']:.3g})."}]
    evidence = {"baseline": {"combination": base["combination"], "values": base["values"],
                             "regularization": base_reg, "val_loss_mean": _number(bm["mean"]),
                             "val_loss_std": _number(bm["std"])},
                "compared": compared, "best": None if best is None else best["combination"]}
    return _finding("regularization_effect", INFO, evidence, explanation, suggestions, rows)
