"""Splitting a dataset (stratified by class, or at random for regression), scaling it, and keeping
it resident on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.cost import EVAL_SAMPLE_LIMIT
from core.datasets import DatasetArrays
from trainrx.network import InputScaling
from workers.engine.config import CLASSIFICATION, REGRESSION, DatasetConfig
from workers.engine.scaling import fit_scaling, fit_target, input_summary


def stratified_split(y: np.ndarray, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``validation_split`` of every class, fixed by ``seed`` alone.

    The training indices come back in a seeded random order, so "the first N
    training samples" is a fair sample of every class.
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    # One stable sort groups every class's indices in ascending order, as ``flatnonzero(y == label)``
    # would per class, without a pass over all rows for each class: O(n log n), not O(n x classes).
    order = np.argsort(y, kind="stable")
    labels, starts = np.unique(y[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    for start, end in zip(starts, ends):
        members = rng.permutation(order[start:end])
        n_val = int(round(len(members) * validation_split)) if len(members) > 1 else 0
        n_val = min(max(n_val, 1 if len(members) > 1 else 0), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))


def random_split(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Regression: hold out ``validation_split`` of the rows at random, fixed by ``seed`` alone
    (nothing to stratify by); the training indices in a seeded random order."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(int(round(n * validation_split)), 1 if n > 1 else 0), max(n - 1, 0))
    return order[n_val:], order[:n_val]


@dataclass
class DeviceData:
    """All of a job's data as tensors on the training device, moved there once. Regression
    targets are float32, standardised with the training split's mean and std (``target``)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    features: int
    classes: int  # 0 for regression
    info: dict
    task: str = CLASSIFICATION
    target: dict | None = None  # regression: {"mean", "std"} of the training targets

    @property
    def outputs(self) -> int:
        return 1 if self.task == REGRESSION else self.classes

    @property
    def target_std(self) -> float | None:
        return self.target["std"] if self.target else None

    @property
    def x_train_eval(self) -> torch.Tensor:
        return self.x_train[:EVAL_SAMPLE_LIMIT]

    @property
    def y_train_eval(self) -> torch.Tensor:
        return self.y_train[:EVAL_SAMPLE_LIMIT]


def prepare(arrays: DatasetArrays, dataset: DatasetConfig, classes: int, device: torch.device) -> DeviceData:
    regression = dataset.task == REGRESSION
    if regression:
        train_idx, val_idx = random_split(len(arrays.y), dataset.validation_split, dataset.split_seed)
    else:
        train_idx, val_idx = stratified_split(arrays.y, dataset.validation_split, dataset.split_seed)
    available = len(train_idx)
    if dataset.train_samples is not None:
        train_idx = train_idx[: dataset.train_samples]

    def tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).to(device)

    # Fitted on the samples trained on only; built-in datasets come scaled by their loader.
    method = dataset.scale
    preprocessing = fit_scaling(arrays.x[train_idx], method, arrays.preprocessing)
    scaling = None if method == "none" else \
        InputScaling.from_preprocessing(preprocessing, int(arrays.x.shape[1])).to(device)
    target = fit_target(arrays.y[train_idx]) if regression else None
    if target is not None:
        preprocessing = {**preprocessing, "target": target}

    def inputs(a: np.ndarray) -> torch.Tensor:
        x = tensor(a, torch.float32)
        return x if scaling is None else scaling(x)

    def targets(y: np.ndarray) -> torch.Tensor:
        if target is None:
            return tensor(y, torch.long)
        return tensor(((np.asarray(y, dtype=np.float64) - target["mean"]) / target["std"]), torch.float32)

    x_train = inputs(arrays.x[train_idx])
    has_test = arrays.x_test is not None
    info = {
        "features": int(arrays.x.shape[1]), "classes": classes,
        "train_samples": int(len(train_idx)), "train_samples_available": int(available),
        "validation_samples": int(len(val_idx)),
        "test_samples": int(arrays.x_test.shape[0]) if has_test else 0,
    }
    if not regression:
        labels, counts = np.unique(arrays.y[train_idx], return_counts=True)
        info["train_class_counts"] = {str(int(k)): int(v) for k, v in zip(labels, counts)}
    info.update({"preprocessing": preprocessing, "input_stats": input_summary(x_train)})
    return DeviceData(
        x_train=x_train, y_train=targets(arrays.y[train_idx]),
        x_val=inputs(arrays.x[val_idx]), y_val=targets(arrays.y[val_idx]),
        x_test=inputs(arrays.x_test) if has_test else None,
        y_test=targets(arrays.y_test) if has_test else None,
        features=int(arrays.x.shape[1]), classes=classes, info=info, task=dataset.task, target=target,
    )
