"""Input and target scaling, fitted on the training split only. The module that applies the
input scaling (``trainrx.network.InputScaling``, ``(x - shift) / scale`` per feature) scales the
training data on the device and runs first inside the exported program, so the two agree to the bit.
"""

from __future__ import annotations

import numpy as np
import torch


def fit_scaling(x_train: np.ndarray, method: str, given: dict) -> dict:
    """The preprocessing record of a job: ``given`` (what the loader did) when
    ``method`` is ``none``, else the parameters fitted on ``x_train``."""
    if method == "none":
        return given
    x = np.asarray(x_train, dtype=np.float64)
    samples = int(x.shape[0])
    if method == "standard":
        std = x.std(axis=0)
        return {"method": "standard", "mean": x.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist(),
                "fitted_on": f"training split ({samples} samples)",
                "note": "(x - mean) / std; features that are constant in the training split keep std 1"}
    if method == "minmax":
        lo, hi = x.min(axis=0), x.max(axis=0)
        span = hi - lo
        return {"method": "minmax", "min": lo.tolist(), "range": np.where(span > 0, span, 1.0).tolist(),
                "fitted_on": f"training split ({samples} samples)",
                "note": "(x - min) / range, range = max - min; constant features keep range 1"}
    raise ValueError(f"unknown scaling {method!r}")


def fit_target(y_train: np.ndarray) -> dict:
    """Regression: the mean and standard deviation of the training targets, which the network
    learns to predict standardised (``(y - mean) / std``); a constant target keeps std 1."""
    y = np.asarray(y_train, dtype=np.float64)
    std = float(y.std()) if y.size else 1.0
    return {"mean": float(y.mean()) if y.size else 0.0, "std": std if std > 0 else 1.0}


def input_summary(x: torch.Tensor) -> dict:
    """What the network is fed, in a few numbers (for the data info and diagnosis of scaling)."""
    if x.numel() == 0:
        return {}
    std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.zeros(x.shape[1], device=x.device)
    return {"abs_max": x.abs().max().item(), "mean_abs_max": x.mean(dim=0).abs().max().item(),
            "std_min": std.min().item(), "std_max": std.max().item()}
