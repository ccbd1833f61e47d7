"""A job's normalised request as a frozen, typed config, built once where the worker receives the
job (``JobConfig.from_request``). The engine, the probes, the diagnosis and the export read its
attributes; the request dict itself stays available (``to_dict``) for what stores or fingerprints
it as it was submitted (the job row, checkpoints, the weights file's metadata).

Jobs queued before an upgrade carry requests without the keys added since: they read with the
defaults below (``architecture.type`` "mlp", ``dataset.task`` "classification", no input shape,
``loss`` cross-entropy for classification and MSE for regression), which mean what those requests
meant. Keys this engine does not know are ignored. Sequences are tuples (frozen).
Torch-free: the diagnosis imports it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from trainrx.network_config import ActivationConfig, ArchitectureConfig, ConvBlockConfig, NetworkConfig

__all__ = ["ActivationConfig", "ArchitectureConfig", "ConvBlockConfig", "DatasetConfig", "EarlyStoppingConfig",
           "JobConfig", "NetworkConfig", "OptimizerConfig", "RegularizationConfig", "TargetsConfig",
           "CLASSIFICATION", "REGRESSION", "DEFAULT_LOSS"]

CLASSIFICATION, REGRESSION = "classification", "regression"
DEFAULT_LOSS = {CLASSIFICATION: "cross_entropy", REGRESSION: "mse"}


@dataclass(frozen=True)
class DatasetConfig:
    name: str | None = None  # a built-in dataset
    id: str | None = None  # an upload
    validation_split: float = 0.2
    train_samples: int | None = None
    split_seed: int = 0
    scale: str = "none"  # uploads only: "none", "standard" or "minmax"
    task: str = CLASSIFICATION
    input_shape: tuple[int, ...] | None = None

    @classmethod
    def from_request(cls, spec: Mapping[str, Any]) -> "DatasetConfig":
        shape = spec.get("input_shape")
        return cls(name=spec.get("name"), id=spec.get("id"), validation_split=spec.get("validation_split", 0.2),
                   train_samples=spec.get("train_samples"), split_seed=spec.get("split_seed", 0),
                   scale=spec.get("scale") or "none", task=spec.get("task") or CLASSIFICATION,
                   input_shape=tuple(int(d) for d in shape) if shape is not None else None)


@dataclass(frozen=True)
class OptimizerConfig:
    name: str
    learning_rate: float
    momentum: float | None = None  # momentum, nesterov
    alpha: float | None = None  # rmsprop
    betas: tuple[float, float] | None = None  # adam, adamw
    eps: float | None = None  # adam, adamw
    weight_decay: float | None = None  # adamw

    @classmethod
    def from_request(cls, spec: Mapping[str, Any]) -> "OptimizerConfig":
        betas = spec.get("betas")
        return cls(name=spec["name"], learning_rate=spec["learning_rate"], momentum=spec.get("momentum"),
                   alpha=spec.get("alpha"), betas=tuple(betas) if betas is not None else None, eps=spec.get("eps"),
                   weight_decay=spec.get("weight_decay"))


@dataclass(frozen=True)
class RegularizationConfig:
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0


@dataclass(frozen=True)
class EarlyStoppingConfig:
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best: bool = True


@dataclass(frozen=True)
class TargetsConfig:
    """The owner's targets; None where not set (a request with ``targets: null`` sets none)."""

    train_accuracy: float | None = None
    val_accuracy: float | None = None
    train_r2: float | None = None
    val_r2: float | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.train_accuracy, self.val_accuracy, self.train_r2, self.val_r2))


@dataclass(frozen=True)
class JobConfig:
    name: str | None
    dataset: DatasetConfig
    architecture: ArchitectureConfig
    activation: ActivationConfig
    optimizer: OptimizerConfig
    regularization: RegularizationConfig
    patience: int | None  # None: no early stopping
    early_stopping: EarlyStoppingConfig | None  # set when ``patience`` is
    epochs: int
    batch_size: int
    seed: int
    device: str
    diagnose: bool
    targets: TargetsConfig
    max_runtime_s: float
    loss: str
    request: dict = field(repr=False, compare=False, hash=False)  # as normalised; read it with to_dict()

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> "JobConfig":
        dataset = DatasetConfig.from_request(request["dataset"])
        patience = request.get("patience")
        stopping = request.get("early_stopping")
        targets = request.get("targets") or {}
        return cls(
            name=request.get("name"),
            dataset=dataset,
            architecture=ArchitectureConfig.from_request(request["architecture"]),
            activation=ActivationConfig.from_request(request["activation"]),
            optimizer=OptimizerConfig.from_request(request["optimizer"]),
            regularization=RegularizationConfig(**{k: v for k, v in (request.get("regularization") or {}).items()
                                                   if k in ("l1", "l2", "dropout")}),
            patience=patience,
            early_stopping=None if patience is None else EarlyStoppingConfig(
                **{k: v for k, v in (stopping or {}).items() if k in ("monitor", "min_delta", "restore_best")}),
            epochs=request["epochs"], batch_size=request["batch_size"], seed=request["seed"],
            device=request.get("device", "auto"), diagnose=request.get("diagnose", True),
            targets=TargetsConfig(**{k: v for k, v in targets.items()
                                     if k in ("train_accuracy", "val_accuracy", "train_r2", "val_r2")}),
            max_runtime_s=request["max_runtime_s"],
            loss=request.get("loss") or DEFAULT_LOSS[dataset.task],
            request=copy.deepcopy(dict(request)),
        )

    @property
    def task(self) -> str:
        return self.dataset.task

    @property
    def is_regression(self) -> bool:
        return self.dataset.task == REGRESSION

    def network(self, features: int, outputs: int, input_shape: tuple[int, ...] | None = None) -> NetworkConfig:
        """The network this job trains on data of ``features`` columns and ``outputs`` outputs;
        ``input_shape`` (from the dataset or the upload) overrides the request's."""
        shape = input_shape if input_shape is not None else self.dataset.input_shape
        return NetworkConfig(self.architecture, self.activation, self.regularization.dropout, int(features),
                             int(outputs), tuple(shape) if shape is not None else None)

    def to_dict(self) -> dict:
        """The normalised request this config was read from, as a fresh copy."""
        return copy.deepcopy(self.request)
