"""Typed results: the API's fields as attributes.

Each object keeps the document it was built from in ``raw``, so fields a newer
server adds are never lost (``job.raw["new_field"]``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Mapping, TypedDict, TypeVar, Union

__all__ = ["Progress", "Summary", "Timings", "JobError", "Job", "Curves", "Suggestion", "Finding", "Diagnosis",
           "Dataset", "StatusEvent", "EpochEvent", "EndEvent", "JobEvent", "Token", "Identity", "FINISHED_STATUSES",
           "Sweep", "SWEEP_STATUSES", "JobRequest", "DatasetRef", "Architecture", "ConvBlock", "EarlyStopping", "Targets", "Task", "Loss"]

FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
SWEEP_STATUSES = ("running", "done", "cancelled")
T = TypeVar("T")


def _parse_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    text = str(value)
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if hint is datetime:
        return _parse_datetime(value)
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return build(hint, value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(hint) or (Any,)
        return [_convert(item, v) for v in value]
    return value


def build(cls: type[T], data: Mapping[str, Any] | None) -> T | None:
    """``cls`` from an API document, ignoring fields it does not know."""
    if data is None:
        return None
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "raw" or not f.init:
            continue
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs, raw=dict(data))  # type: ignore[call-arg]


def _raw() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


# --- requests ------------------------------------------------------------------
# What POST /v1/jobs takes, for editors and type checkers: plain dicts (``jobs.create`` sends
# any mapping). Every key is optional here; the server fills the defaults and answers 422 naming
# each bad field (docs/requests.md).

Task = Literal["classification", "regression"]
Loss = Literal["cross_entropy", "mse", "huber"]


class ConvBlock(TypedDict, total=False):
    """One convolution block; a bare ``int`` in ``conv_layers`` is ``{"channels": n}``."""

    channels: int
    kernel: int  # odd, default 3 ("same" padding)
    stride: int  # default 1
    pool: Literal["max", "avg"] | None  # 2 wide, stride 2; default None


class Architecture(TypedDict, total=False):
    type: Literal["mlp", "cnn"]  # default "mlp"
    hidden_layers: list[int]  # required; may be empty for a cnn (its dense head)
    conv_layers: list[Union[int, ConvBlock]]  # cnn only
    global_pool: bool  # cnn only, default True (False: flatten)
    batch_norm: bool
    residual: bool
    init: str


class DatasetRef(TypedDict, total=False):
    name: str  # a built-in, or
    id: str  # an upload
    validation_split: float
    train_samples: int | None
    split_seed: int
    scale: Literal["none", "standard", "minmax"]  # uploads only
    input_shape: list[int] | None  # [C, L] or [C, H, W]; default: the dataset's
    task: Task  # set by the dataset; echoed in the normalised request


class EarlyStopping(TypedDict, total=False):
    monitor: Literal["val_loss", "val_accuracy", "val_r2", "val_mae"]  # the dataset's task's metrics
    min_delta: float
    restore_best: bool


class Targets(TypedDict, total=False):
    train_accuracy: float | None  # classification
    val_accuracy: float | None
    train_r2: float | None  # regression
    val_r2: float | None


class JobRequest(TypedDict, total=False):
    name: str | None
    dataset: DatasetRef
    architecture: Architecture
    activation: Union[str, dict]
    optimizer: Union[str, dict]
    loss: Loss | None  # classification: cross_entropy; regression: mse (default) or huber
    regularization: dict
    patience: int | None
    early_stopping: EarlyStopping | None
    epochs: int
    batch_size: int
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    diagnose: bool
    targets: Targets | None
    max_runtime_s: int


# --- results --------------------------------------------------------------------

@dataclass
class Progress:
    epoch: int = 0
    epochs: int = 0
    raw: dict = _raw()


@dataclass
class Summary:
    """The metrics of the epoch whose weights are returned (``returned_epoch``). A classification
    job has the accuracies; a regression job has R² and MAE (in the target's units) instead."""

    train_loss: float | None = None
    val_loss: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    train_r2: float | None = None
    val_r2: float | None = None
    train_mae: float | None = None
    val_mae: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    stopped_early: bool | None = None
    returned_epoch: int | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_r2: float | None = None
    test_mae: float | None = None
    raw: dict = _raw()

    def get(self, name: str) -> Any:
        """Any summary field by name, including ones this SDK version does not know."""
        return self.raw.get(name, getattr(self, name, None))


@dataclass
class Timings:
    queued_s: float | None = None
    setup_s: float | None = None
    train_s: float | None = None
    total_s: float | None = None
    raw: dict = _raw()


@dataclass
class JobError:
    type: str | None = None
    message: str | None = None
    raw: dict = _raw()


@dataclass
class Job:
    id: str
    status: str
    owner: str | None = None
    attempts: int = 0
    name: str | None = None
    queue: str | None = None
    request: dict = field(default_factory=dict)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress = field(default_factory=Progress)
    summary: Summary | None = None
    timings: Timings | None = None
    error: JobError | None = None
    data: dict | None = None
    model: dict | None = None
    links: dict = field(default_factory=dict)
    raw: dict = _raw()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


@dataclass
class Sweep:
    """A sweep (``client.sweeps``). ``children``: one dict per combination x seed (``index``,
    ``job_id`` (None until created), ``values``, ``seed``, ``status``); ``results``: one dict per
    combination (``values``, ``seeds``, ``job_ids``, ``finished``, ``metrics`` {name: {mean, std,
    n}}, ``verdicts``, ``verdict``, ``best_epoch``, ``time_s``); ``comparison``: {"findings": [...]}."""

    id: str
    status: str
    name: str | None = None
    owner: str | None = None
    size: int = 0
    max_parallel: int = 0
    created_at: datetime | None = None
    finished_at: datetime | None = None
    spec: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    children: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    comparison: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    raw: dict = _raw()

    @property
    def finished(self) -> bool:
        """Done or cancelled: no child will be created or run any more (cancelled ones may still stop)."""
        return self.status != "running"


@dataclass
class Token:
    """An API token's record. ``token`` is set only in the answer that created it (shown once)."""

    id: str
    owner: str
    role: str
    label: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    token: str | None = field(default=None, repr=False)
    raw: dict = _raw()


@dataclass
class Identity:
    """Who a credential belongs to (``GET /v1/me``)."""

    owner: str
    role: str
    via: str | None = None
    token: Token | None = None
    raw: dict = _raw()


@dataclass
class Curves:
    """Per-epoch lists, index i is epoch ``epoch[i]``; ``grad_norm`` maps each
    weight layer (input to output: conv1.., hidden1.., output) to its list. A
    regression job's curves have the R² and MAE lists and empty accuracy lists."""

    job_id: str
    status: str
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float | None] = field(default_factory=list)
    train_accuracy: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    train_r2: list[float | None] = field(default_factory=list)
    val_r2: list[float | None] = field(default_factory=list)
    train_mae: list[float | None] = field(default_factory=list)
    val_mae: list[float | None] = field(default_factory=list)
    learning_rate: list[float | None] = field(default_factory=list)
    grad_norm: dict[str, list[float | None]] = field(default_factory=dict)
    raw: dict = _raw()

    def rows(self) -> list[dict[str, Any]]:
        """One dict per epoch (the shape of an ``epoch`` event): the metrics this job has."""
        keys = [k for k in ("epoch", "train_loss", "train_accuracy", "train_r2", "train_mae", "val_loss",
                            "val_accuracy", "val_r2", "val_mae", "learning_rate")
                if len(getattr(self, k)) == len(self.epoch)]
        return [{**{k: getattr(self, k)[i] for k in keys},
                 "grad_norm": {name: values[i] for name, values in self.grad_norm.items()}}
                for i in range(len(self.epoch))]


@dataclass
class Suggestion:
    """A change to the request (a JSON merge patch) and why it should help."""

    patch: dict = field(default_factory=dict)
    why: str | None = None
    raw: dict = _raw()


@dataclass
class Finding:
    code: str
    severity: str | None = None
    epoch: int | None = None
    evidence: dict = field(default_factory=dict)
    explanation: str | None = None
    suggestions: list[Suggestion] = field(default_factory=list)
    raw: dict = _raw()


@dataclass
class Diagnosis:
    """The recipe's verdict (``healthy``, ``training_problem``, ``overfitting``) and
    findings, most important first. ``final`` is False while the job runs."""

    job_id: str
    status: str
    final: bool = False
    verdict: str | None = None
    findings: list[Finding] = field(default_factory=list)
    raw: dict = _raw()

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]


@dataclass
class Dataset:
    """A built-in dataset (``name``) or an upload (``id``; use ``{"dataset": {"id": ...}}``).
    ``task`` is classification or regression (``classes`` 0, ``target`` its range); ``input_shape``
    is how a cnn sees a row (``[C, L]`` or ``[C, H, W]``), None when it has no spatial shape."""

    name: str | None = None
    id: str | None = None
    description: str | None = None
    task: str | None = None
    input_shape: list[int] | None = None
    features: int | None = None
    classes: int | None = None
    target: dict | None = None
    samples: int | None = None
    test_samples: int | None = None
    rows: int | None = None
    class_counts: dict | None = None
    format: str | None = None
    filename: str | None = None
    feature_ranges: list[dict] | None = None
    upload_bytes: int | None = None
    size_bytes: int | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    raw: dict = _raw()


@dataclass
class StatusEvent:
    """The job's status changed (or, first on a stream, what it is now)."""

    id: int
    status: str
    job_id: str | None = None
    attempts: int = 0  # workers lost so far
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    type: Literal["status"] = "status"
    raw: dict = _raw()


@dataclass
class EpochEvent:
    """One finished epoch: its row of the curves."""

    id: int
    epoch: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    train_r2: float | None = None  # regression jobs: R² and MAE in place of the accuracies
    val_r2: float | None = None
    train_mae: float | None = None
    val_mae: float | None = None
    learning_rate: float | None = None
    grad_norm: dict = field(default_factory=dict)
    type: Literal["epoch"] = "epoch"
    raw: dict = _raw()


@dataclass
class EndEvent:
    """The last event of a stream: the finished job."""

    id: int
    job: Job
    type: Literal["end"] = "end"
    raw: dict = _raw()


JobEvent = Union[StatusEvent, EpochEvent, EndEvent]


def parse_event(event_id: int, kind: str, data: Mapping[str, Any]) -> JobEvent | None:
    if kind == "status":
        return build(StatusEvent, {**data, "id": event_id})
    if kind == "epoch":
        return build(EpochEvent, {**data, "id": event_id})
    if kind == "end":
        return EndEvent(id=event_id, job=build(Job, data), raw=dict(data))  # type: ignore[arg-type]
    return None  # an event type this SDK version does not know
