"""Splitting a dataset and keeping it resident on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.cost import EVAL_SAMPLE_LIMIT
from core.datasets import DatasetArrays
from workers.engine.config import DatasetConfig
from workers.engine.scaling import InputScaling, fit_scaling, input_summary


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


@dataclass
class DeviceData:
    """All of a job's data as tensors on the training device, moved there once."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    features: int
    classes: int
    info: dict

    @property
    def x_train_eval(self) -> torch.Tensor:
        return self.x_train[:EVAL_SAMPLE_LIMIT]

    @property
    def y_train_eval(self) -> torch.Tensor:
        return self.y_train[:EVAL_SAMPLE_LIMIT]


def prepare(arrays: DatasetArrays, dataset: DatasetConfig, classes: int, device: torch.device) -> DeviceData:
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

    def inputs(a: np.ndarray) -> torch.Tensor:
        x = tensor(a, torch.float32)
        return x if scaling is None else scaling(x)

    x_train = inputs(arrays.x[train_idx])
    has_test = arrays.x_test is not None
    labels, counts = np.unique(arrays.y[train_idx], return_counts=True)
    info = {
        "features": int(arrays.x.shape[1]), "classes": classes,
        "train_samples": int(len(train_idx)), "train_samples_available": int(available),
        "validation_samples": int(len(val_idx)),
        "test_samples": int(arrays.x_test.shape[0]) if has_test else 0,
        "train_class_counts": {str(int(k)): int(v) for k, v in zip(labels, counts)},
        "preprocessing": preprocessing,
        "input_stats": input_summary(x_train),
    }
    return DeviceData(
        x_train=x_train, y_train=tensor(arrays.y[train_idx], torch.long),
        x_val=inputs(arrays.x[val_idx]), y_val=tensor(arrays.y[val_idx], torch.long),
        x_test=inputs(arrays.x_test) if has_test else None,
        y_test=tensor(arrays.y_test, torch.long) if has_test else None,
        features=int(arrays.x.shape[1]), classes=classes, info=info,
    )
