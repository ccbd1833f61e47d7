"""Make values safe for JSON and for PostgreSQL: no NaN/Infinity, no NUL characters."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """Non-finite floats become None; NUL characters are dropped from strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
