"""Early stopping on a validation metric, as Keras and Lightning define it: ``val_loss`` and
``val_mae`` improve downwards, ``val_accuracy`` and ``val_r2`` upwards."""

from __future__ import annotations

import math

import torch


class EarlyStopping:
    def __init__(self, patience: int, monitor: str = "val_loss", min_delta: float = 0.0,
                 restore_best: bool = True) -> None:
        self.patience = patience
        self.monitor = monitor
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.mode_min = monitor.endswith(("loss", "mae"))  # lower is better; accuracy and r2: higher
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.wait = 0

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode_min:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, metrics: dict, model: torch.nn.Module) -> bool:
        """Record an epoch; True when training should stop."""
        value = metrics.get(self.monitor)
        if value is not None and math.isfinite(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.wait += 1
        return self.wait >= self.patience

    def state_dict(self) -> dict:
        """What changes as epochs go by (the settings come from the request), for a checkpoint."""
        return {"best": self.best, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "wait": self.wait}

    def load_state_dict(self, state: dict, device: torch.device | None = None) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        best_state = state["best_state"]
        self.best_state = None if best_state is None else {k: v.to(device) for k, v in best_state.items()}
