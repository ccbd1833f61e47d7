"""The diagnosis: the recipe of deep learning, in order.

1. Is the network good on the *training* data? If not: a training problem.
2. Only then: is it good on the *validation* data? If not: overfitting.
"""

from __future__ import annotations

from workers.diagnosis.recipe import diagnose

__all__ = ["diagnose"]
