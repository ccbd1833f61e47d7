"""What the rules read: a run's curves, step samples and initial probes, with the
small derived numbers several rules need.

The rules speak of "the fit metric" so that one recipe serves both tasks:
accuracy for classification, R² for regression (rows and summary carry
``train_r2``/``val_r2`` there and no accuracy keys). Both measure skill on the
same scale: 1 is perfect, and chance (the majority class; the training mean,
R² = 0) is what a network that learned nothing scores.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from core.stop_reasons import DIVERGED
from workers.engine.config import JobConfig
# The training loss of predicting the training mean, on standardised targets: the starting
# point a regression run is judged from when no step was sampled. MSE: the variance, 1.
# Huber (delta 1): its expectation for normally distributed targets.
MEAN_PREDICTOR_LOSS = {"mse": 1.0, "huber": 0.4247}


def finite(values) -> list[float]:
    return [v for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]


def median(values) -> float | None:
    values = finite(values)
    return statistics.median(values) if values else None


def layer_label(name: str) -> str:
    """A probe's layer key as a person reads it: ``conv2`` -> "conv layer 2", ``hidden3`` ->
    "hidden layer 3". Layers are named input to output (conv1..convN, hidden1..hiddenN, output)."""
    for prefix, words in (("conv", "conv layer"), ("hidden", "hidden layer")):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return f"{words} {name[len(prefix):]}"
    return f"the {name} layer" if name == "output" else f"layer {name}"


@dataclass
class Run:
    config: JobConfig
    rows: list[dict]
    summary: dict | None
    stop_reason: str | None
    data_info: dict | None
    steps: dict | None = None
    initial: dict | None = None
    final: bool = True
    layers: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.layers = list(self.rows[0]["grad_norm"]) if self.rows else []

    # --- the task and its fit metric ----------------------------------------
    @property
    def regression(self) -> bool:
        return self.config.is_regression

    @property
    def metric(self) -> str:
        """The fit metric's row-key suffix: ``accuracy`` or ``r2``."""
        return "r2" if self.regression else "accuracy"

    @property
    def metric_label(self) -> str:
        return "R²" if self.regression else "accuracy"

    @property
    def train_key(self) -> str:
        return f"train_{self.metric}"

    @property
    def val_key(self) -> str:
        return f"val_{self.metric}"

    def target(self, key: str) -> float | None:
        """The request's ``targets.<key>`` (``train_accuracy``, ``val_r2``...), or None."""
        return getattr(self.config.targets, key)

    # --- the data -----------------------------------------------------------
    @property
    def class_counts(self) -> dict[str, int]:
        if self.regression:
            return {}
        return (self.data_info or {}).get("train_class_counts") or {}

    @property
    def classes(self) -> int:
        return (self.data_info or {}).get("classes") or max(len(self.class_counts), 2)

    @property
    def chance(self) -> float:
        """The fit metric of a network that learned nothing: always answering the most common
        training class (accuracy), or always predicting the training mean (R² = 0)."""
        if self.regression:
            return 0.0
        counts = self.class_counts
        if counts:
            return max(counts.values()) / sum(counts.values())
        return 1.0 / self.classes

    # --- the curves ---------------------------------------------------------
    def series(self, key: str) -> list:
        return [row.get(key) for row in self.rows]

    def layer_series(self, key: str, layer: str) -> list:
        return [(row.get(key) or {}).get(layer) for row in self.rows]

    @property
    def fit_series(self) -> list:
        return self.series(self.train_key)

    @property
    def returned(self) -> dict | None:
        """The curves row of the epoch whose weights are returned."""
        if not self.rows:
            return None
        epoch = (self.summary or {}).get("returned_epoch")
        if epoch is not None:
            for row in self.rows:
                if row["epoch"] == epoch:
                    return row
        return self.rows[-1]

    @property
    def diverged(self) -> bool:
        return self.stop_reason == DIVERGED or any(r.get("nonfinite") for r in self.rows) or any(
            r.get("train_loss") is None for r in self.rows)

    @property
    def initial_loss(self) -> float | None:
        """The training loss before learning: the first sampled batch loss, else that of a network
        that learned nothing (ln(classes); for regression, predicting the mean)."""
        losses = finite((self.steps or {}).get("loss", [])[:1])
        if losses:
            return losses[0]
        if self.regression:
            return MEAN_PREDICTOR_LOSS.get(self.config.loss)
        return math.log(self.classes)

    @property
    def restored_best(self) -> bool:
        stopping = self.config.early_stopping
        return bool((self.summary or {}).get("stopped_early") and stopping and stopping.restore_best)
