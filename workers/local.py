"""A job on a built-in dataset trained and diagnosed in this process: what the worker does with
a job, less the services (queue, database, artifacts). The engine tests and
``bench/remedies.py`` use it, so the bench measures the diagnosis a worker would give."""

from __future__ import annotations

import torch

from core.datasets import BUILTIN_DATASETS, load_builtin
from core.settings import Limits
from core.spec import normalise
from workers.diagnosis import diagnose
from workers.engine import loop
from workers.engine.config import JobConfig
from workers.engine.data import prepare


def train_and_diagnose(raw: dict) -> tuple[dict, loop.RunResult, dict]:
    """The normalised request, the run and its final diagnosis: one typed config for the engine and
    the diagnosis, on the CPU."""
    request = normalise(raw, limits=Limits(), resolver=None)
    config = JobConfig.from_request(request)
    meta = BUILTIN_DATASETS[config.dataset.name]
    data = prepare(load_builtin(meta.name), config.dataset, meta.classes, torch.device("cpu"))
    result = loop.run(config, data)
    probes = result.probes
    diagnosis = diagnose(config, result.rows, result.summary, result.stop_reason, data.info, limits=Limits(),
                         resolver=None, steps=probes.steps if probes else None,
                         initial=probes.initial if probes else None)
    return request, result, diagnosis
