"""A first version of the recipe's two questions."""

from __future__ import annotations


def _chance(data_info: dict | None) -> float:
    classes = (data_info or {}).get("classes") or 2
    return 1.0 / classes


def diagnose(request: dict, rows: list[dict], summary: dict | None, stop_reason: str | None,
             data_info: dict | None) -> dict:
    findings: list[dict] = []
    if not rows or summary is None:
        return {"verdict": None, "findings": []}
    chance = _chance(data_info)
    train_target = chance + 0.5 * (1 - chance)
    train_acc = summary.get("train_accuracy")
    val_acc = summary.get("val_accuracy")
    if train_acc is None or train_acc < train_target or stop_reason == "diverged":
        findings.append({
            "code": "poor_training_fit", "severity": "error", "epoch": rows[-1]["epoch"],
            "evidence": {"train_accuracy": train_acc, "threshold": train_target, "chance": chance},
            "explanation": "The network is not good on its training data, so this is a training problem, "
                           "not overfitting.",
            "suggestions": [],
        })
        return {"verdict": "training_problem", "findings": findings}
    gap = train_acc - (val_acc or 0.0)
    if gap > 0.1:
        findings.append({
            "code": "overfitting", "severity": "warning", "epoch": summary.get("best_epoch"),
            "evidence": {"accuracy_gap": gap, "threshold": 0.1},
            "explanation": "Good on training data but worse on validation data: overfitting.",
            "suggestions": [],
        })
        return {"verdict": "overfitting", "findings": findings}
    return {"verdict": "healthy", "findings": findings}
