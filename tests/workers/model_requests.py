"""Requests for CNN and regression runs, normalised, and their data, for the engine-level tests.

``normalised`` goes through ``core.spec.normalise``. While the request side does not know the
issue-10 keys yet (``architecture.type``, ``conv_layers``, ``global_pool``, the regression
built-ins), it normalises the rest and adds those keys as the contract between the request side
and the engine defines them (docs/models.md): a bare integer block is ``{"channels": N, "kernel":
3, "stride": 1, "pool": null}``, ``global_pool`` defaults to true, built-ins carry their
``input_shape`` and ``task``. Once ``ArchitectureSpec`` declares ``conv_layers``, ``normalise``
alone is used, and these tests check the request side's output as well.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import torch

from core.datasets import BUILTIN_DATASETS, DatasetArrays, load_builtin
from core.settings import Limits
from core.spec import ArchitectureSpec, normalise
from workers.engine.config import JobConfig
from workers.engine.data import DeviceData, prepare

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# The contract's built-in shapes and tasks (core/datasets.py declares them once the request side has them).
INPUT_SHAPES = {"digits": [1, 8, 8], "mnist-5k": [1, 28, 28], "mnist1d": [1, 40]}
REGRESSION_BUILTINS = {"friedman1", "diabetes"}
SPEC_KNOWS_CNNS = "conv_layers" in ArchitectureSpec._declared_fields


def _block(spec: int | dict) -> dict:
    if isinstance(spec, int):
        return {"channels": spec, "kernel": 3, "stride": 1, "pool": None}
    return {"kernel": 3, "stride": 1, "pool": None, **spec}


def normalised(request: dict) -> dict:
    """The normalised request, as the worker receives it."""
    limits = Limits(max_parameters=10**8)
    if SPEC_KNOWS_CNNS:
        return normalise(request, limits=limits, resolver=None)
    request = copy.deepcopy(request)
    architecture = request["architecture"]
    cnn = {key: architecture.pop(key) for key in ("type", "conv_layers", "global_pool") if key in architecture}
    head = architecture.get("hidden_layers", [])
    architecture["hidden_layers"] = head or [1]
    name = request["dataset"].get("name")
    regression = name in REGRESSION_BUILTINS
    if regression:
        request["dataset"]["name"] = "moons"
    loss = request.pop("loss", None)
    monitor = (request.get("early_stopping") or {}).pop("monitor", None)
    targets = request.pop("targets", None)
    out = normalise(request, limits=limits, resolver=None)
    if monitor is not None:
        out["early_stopping"]["monitor"] = monitor
    if targets is not None:
        out["targets"] = {**dict.fromkeys(("train_r2", "val_r2") if regression else
                                          ("train_accuracy", "val_accuracy")), **targets}
    out["architecture"].update({"type": cnn.get("type", "mlp"), "hidden_layers": head})
    if out["architecture"]["type"] == "cnn":
        out["architecture"]["conv_layers"] = [_block(b) for b in cnn.get("conv_layers", [])]
        out["architecture"]["global_pool"] = cnn.get("global_pool", True)
    out["dataset"].update({"name": name, "task": "regression" if regression else "classification",
                           "input_shape": INPUT_SHAPES.get(name)})
    out["loss"] = loss or ("mse" if regression else "cross_entropy")
    return out


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


@functools.lru_cache(maxsize=None)
def arrays(name: str) -> DatasetArrays:
    """A built-in's rows; the regression built-ins as the contract defines them (scikit-learn's)."""
    if name == "friedman1":
        from sklearn.datasets import make_friedman1

        x, y = make_friedman1(n_samples=2000, noise=1.0, random_state=0)
        return DatasetArrays(x.astype(np.float32), y.astype(np.float32), None, None, {"method": "none"})
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True)
        return DatasetArrays(x.astype(np.float32), y.astype(np.float32), None, None, {"method": "none"})
    return load_builtin(name)


def data_for(config: JobConfig, arrays_: DatasetArrays | None = None) -> DeviceData:
    name = config.dataset.name
    classes = 0 if config.is_regression else BUILTIN_DATASETS[name].classes
    return prepare(arrays_ if arrays_ is not None else arrays(name), config.dataset, classes, torch.device("cpu"))


def config_for(request: dict) -> JobConfig:
    return JobConfig.from_request(normalised(request))
