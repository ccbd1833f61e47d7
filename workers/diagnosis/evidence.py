"""What the rules read: a run's curves, step samples and initial probes, with the
small derived numbers several rules need."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from core.stop_reasons import DIVERGED


def finite(values) -> list[float]:
    return [v for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]


def median(values) -> float | None:
    values = finite(values)
    return statistics.median(values) if values else None


@dataclass
class Run:
    request: dict
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

    # --- the data -----------------------------------------------------------
    @property
    def class_counts(self) -> dict[str, int]:
        return (self.data_info or {}).get("train_class_counts") or {}

    @property
    def classes(self) -> int:
        return (self.data_info or {}).get("classes") or max(len(self.class_counts), 2)

    @property
    def chance(self) -> float:
        """Accuracy of always answering the most common training class."""
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
        """The training loss before learning: the first sampled batch loss, else ln(classes)."""
        losses = finite((self.steps or {}).get("loss", [])[:1])
        return losses[0] if losses else math.log(self.classes)

    @property
    def restored_best(self) -> bool:
        es = self.request.get("early_stopping") or {}
        return bool((self.summary or {}).get("stopped_early") and es.get("restore_best"))
