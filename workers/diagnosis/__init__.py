"""The diagnosis: the recipe of deep learning, in order.

1. Is the network good on the *training* data? If not: a training problem,
   and the symptoms seen while training say which fix to try first.
2. Only then: is it good on the *validation* data? If not: overfitting.

Pure Python on the numbers the probes recorded: no torch, so it can run on
partial curves after every epoch.
"""

from __future__ import annotations

from workers.diagnosis.recipe import diagnose

__all__ = ["diagnose"]
