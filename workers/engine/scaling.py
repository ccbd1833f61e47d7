"""Input scaling: fitted on the training split only, applied on the device, and
built into the exported model as its first step.

Every method is ``(x - shift) / scale`` per feature. The same module scales
the training data and runs inside the exported program, so the two agree to
the bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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


class InputScaling(nn.Module):
    """``(x - shift) / scale``, per feature, in float32."""

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", shift.to(torch.float32))
        self.register_buffer("scale", scale.to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    @classmethod
    def from_preprocessing(cls, preprocessing: dict, features: int) -> "InputScaling | None":
        """The module for a preprocessing record; None when the inputs are used as given."""
        method = preprocessing.get("method", "none")
        if method == "none":
            return None
        if method == "divide":
            shift, scale = [0.0] * features, [float(preprocessing["value"])] * features
        elif method == "standard":
            shift, scale = preprocessing["mean"], preprocessing["std"]
        elif method == "minmax":
            shift, scale = preprocessing["min"], preprocessing["range"]
        else:
            raise ValueError(f"unknown preprocessing method {method!r}")
        return cls(torch.tensor(shift, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64))


def input_summary(x: torch.Tensor) -> dict:
    """What the network is fed, in a few numbers (for the data info and diagnosis of scaling)."""
    if x.numel() == 0:
        return {}
    std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.zeros(x.shape[1], device=x.device)
    return {"abs_max": x.abs().max().item(), "mean_abs_max": x.mean(dim=0).abs().max().item(),
            "std_min": std.min().item(), "std_max": std.max().item()}
