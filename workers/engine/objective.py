"""The loss and the metric, in one place: classification with cross-entropy and
accuracy for now; regression will add a second objective here."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Classification:
    name = "classification"
    metric = "accuracy"

    @staticmethod
    def loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction=reduction)

    @staticmethod
    def correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Number of right predictions in the batch, as a tensor (no host sync)."""
        return (logits.argmax(dim=1) == targets).sum()
