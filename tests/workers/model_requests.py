"""Requests for CNN and regression runs, normalised, and their data, for the engine-level tests.

``normalised`` goes through ``core.spec.normalise``, as the API does.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

from core.datasets import BUILTIN_DATASETS, DatasetArrays, load_builtin
from core.settings import Limits
from core.spec import normalise
from workers.engine.config import JobConfig
from workers.engine.data import DeviceData, prepare

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def normalised(request: dict) -> dict:
    """The normalised request, as the worker receives it."""
    return normalise(request, limits=Limits(max_parameters=10**8), resolver=None)


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


@functools.lru_cache(maxsize=None)
def arrays(name: str) -> DatasetArrays:
    return load_builtin(name)


def data_for(config: JobConfig, arrays_: DatasetArrays | None = None) -> DeviceData:
    name = config.dataset.name
    classes = 0 if config.is_regression else BUILTIN_DATASETS[name].classes
    return prepare(arrays_ if arrays_ is not None else arrays(name), config.dataset, classes, torch.device("cpu"))


def config_for(request: dict) -> JobConfig:
    return JobConfig.from_request(normalised(request))
