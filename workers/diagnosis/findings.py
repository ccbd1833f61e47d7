"""The shape of a finding."""

from __future__ import annotations

import math

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITY_RANK = {ERROR: 0, WARNING: 1, INFO: 2}


def _number(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def finding(code: str, severity: str, epoch: int | None, evidence: dict, explanation: str,
            suggestions: list[dict | None]) -> dict:
    return {
        "code": code,
        "severity": severity,
        "epoch": epoch,
        "evidence": {k: _number(v) for k, v in evidence.items()},
        "explanation": explanation,
        "suggestions": [s for s in suggestions if s is not None],
    }
