"""The loss and the metrics, in one place: classification (cross-entropy; accuracy) and regression
(MSE or Huber on standardised targets; R² and MAE in the target's units).

An objective accumulates its metrics over an evaluation's chunks as device tensors (no host sync
until ``metrics``), so that an evaluation costs one sync whatever its size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workers.engine.config import JobConfig


class Classification:
    task = "classification"
    metrics_names = ("accuracy",)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction=reduction)

    def zeros(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {"correct": torch.zeros((), device=device, dtype=torch.long)}

    def accumulate(self, totals: dict[str, torch.Tensor], logits: torch.Tensor, targets: torch.Tensor) -> None:
        totals["correct"] += (logits.argmax(dim=1) == targets).sum()

    def metrics(self, totals: dict[str, torch.Tensor], n: int) -> dict[str, float]:
        return {"accuracy": totals["correct"].item() / n}


class Regression:
    """Targets are standardised on the training split (``(y - mean) / std``); the loss is on those.
    R² is scale-free, so the same on either scale; MAE is given in the target's units (× std)."""

    task = "regression"
    metrics_names = ("r2", "mae")

    def __init__(self, loss: str, target_std: float) -> None:
        if loss not in ("mse", "huber"):
            raise ValueError(f"unknown regression loss {loss!r}")
        self.loss_name, self.target_std = loss, float(target_std)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        predictions = outputs.squeeze(-1)
        if self.loss_name == "huber":
            return F.huber_loss(predictions, targets, reduction=reduction, delta=1.0)
        return F.mse_loss(predictions, targets, reduction=reduction)

    def zeros(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {"sums": torch.zeros(4, device=device, dtype=torch.float64)}  # Σe², Σ|e|, Σy, Σy²

    def accumulate(self, totals: dict[str, torch.Tensor], outputs: torch.Tensor, targets: torch.Tensor) -> None:
        error = outputs.squeeze(-1).double() - targets.double()
        y = targets.double()
        totals["sums"] += torch.stack([error.square().sum(), error.abs().sum(), y.sum(), y.square().sum()])

    def metrics(self, totals: dict[str, torch.Tensor], n: int) -> dict[str, float | None]:
        sse, sae, sy, syy = totals["sums"].tolist()
        total = syy - sy * sy / n
        r2 = 1.0 - sse / total if total > 0 else None
        mae = sae / n * self.target_std
        return {"r2": r2 if r2 is not None and math.isfinite(r2) else None,
                "mae": mae if math.isfinite(mae) else None}


Objective = Classification | Regression


def objective_for(config: JobConfig, target_std: float | None) -> Objective:
    if config.is_regression:
        return Regression(config.loss, target_std if target_std is not None else 1.0)
    return Classification()
