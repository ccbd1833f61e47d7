"""Evaluating the network on resident data: one ``Evaluation`` whatever is asked of it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.cost import EVAL_BATCH
from trainrx.network import Network
from workers.engine.objective import Objective
from workers.engine.probes import PROBE_SAMPLES, recording


@dataclass(frozen=True)
class Evaluation:
    """Mean loss and the objective's metrics (``accuracy``; or ``r2`` and ``mae``) in eval mode;
    ``activations``, when probed, the activation statistics of the first PROBE_SAMPLES samples
    (device tensors, per block, as ``probes.recording`` collects them)."""

    loss: float
    metrics: dict[str, float | None]
    activations: dict[str, list[torch.Tensor]] | None = None


@torch.inference_mode()
def evaluate(model: Network, x: torch.Tensor, y: torch.Tensor, objective: Objective,
             probe_activation: str | None = None) -> Evaluation:
    """In eval mode (dropout off, batch norm frozen), in chunks of EVAL_BATCH; with
    ``probe_activation``, the first chunk is the probe batch and hooks read its activations."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    totals = objective.zeros(x.device)
    activations = None

    def add(start: int, end: int) -> None:
        nonlocal loss_sum
        out, target = model(x[start:end]), y[start:end]
        loss_sum += objective.loss(out, target, reduction="sum")
        objective.accumulate(totals, out, target)

    start = 0
    if probe_activation is not None and x.shape[0]:
        with recording(model, probe_activation) as activations:
            add(0, PROBE_SAMPLES)
        start = PROBE_SAMPLES
    for start in range(start, x.shape[0], EVAL_BATCH):
        add(start, start + EVAL_BATCH)
    model.train(was_training)
    n = max(int(x.shape[0]), 1)
    return Evaluation(loss_sum.item() / n, objective.metrics(totals, n), activations)
