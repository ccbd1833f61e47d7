"""What a plot request may ask for, and the numbers a plot is drawn from.

Kept free of matplotlib: the API validates requests and gathers data with it,
and only the renderer's child processes import matplotlib.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The plots of one job, in the order a report shows them.
PLOT_NAMES = ("curves", "gradients", "activations", "steps")

# Pixel sizes and resolution: a 4K-wide picture is the most a page needs; past these a
# PNG costs seconds of a renderer and megabytes of memory for nothing a screen shows.
MIN_WIDTH, MAX_WIDTH = 320, 3840
MIN_HEIGHT, MAX_HEIGHT = 240, 2160
MIN_DPI, MAX_DPI = 50, 300
DEFAULT_WIDTH, DEFAULT_HEIGHT, DEFAULT_DPI = 1200, 600, 100
# The picture in inches (pixels / dpi) that its text, in points, has to fit in: the
# smallest pixel sizes at the default dpi. Smaller, the axes collapse under the labels.
MIN_WIDTH_IN, MIN_HEIGHT_IN = MIN_WIDTH / DEFAULT_DPI, MIN_HEIGHT / DEFAULT_DPI

# Jobs one comparison overlays: past about eight lines a legend stops telling them apart.
MAX_COMPARE_JOBS = 8
# Metrics a comparison may overlay (per epoch); the regression task records R² instead of accuracy.
COMPARE_METRICS = ("val_accuracy", "train_accuracy", "val_loss", "train_loss", "val_r2", "train_r2",
                   "learning_rate")
DEFAULT_COMPARE_METRIC = "val_accuracy"

# Epochs a plot draws at most: a 10,000-epoch run is thinned to this many evenly spaced ones;
# and sampled steps (about ten an epoch), likewise.
MAX_POINTS = 2000
MAX_STEP_POINTS = 5000


@dataclass(frozen=True)
class Size:
    """A PNG's size in pixels, and the resolution that sets how large its text is."""

    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    dpi: int = DEFAULT_DPI

    @property
    def key(self) -> str:
        return f"{self.width}x{self.height}-{self.dpi}dpi"  # a storage key segment (core/storage.py)


@dataclass(frozen=True)
class JobData:
    """What the plots of one job read: its epoch rows (the curves rows the worker wrote),
    sampled steps, initial probes, summary and diagnosis, as the job store keeps them."""

    title: str
    status: str
    rows: list[dict] = field(default_factory=list)
    steps: dict | None = None
    initial: dict | None = None
    summary: dict | None = None
    diagnosis: dict | None = None
    epochs_requested: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobData":
        return cls(**data)

    def finding(self, code: str) -> dict | None:
        """The diagnosis' finding with this code, if it has one."""
        for item in (self.diagnosis or {}).get("findings") or []:
            if item.get("code") == code:
                return item
        return None
