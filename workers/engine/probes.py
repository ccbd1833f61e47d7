"""Probes: what the diagnosis needs to see inside training, collected cheaply.

Per step, at sampled steps only (every step at the start, where an explosion
can happen and be over inside epoch 1, then about ten a epoch): the batch loss
and the total gradient norm. Per epoch: the largest per-layer gradient norm
(convolutions and linear layers), weight norms and update/weight ratios, and, on a
fixed batch of training samples in eval mode (the first chunk of the evaluation pass
that the curves need anyway, so no extra forward pass), per block (``conv<i>``,
``hidden<i>``) the fraction of ReLU-family units that never activate (for a
convolution: channels never positive anywhere on the batch), the fraction of
sigmoid/tanh pre-activations in the flat range, and the activation variance. The
same activation statistics are taken once before the first step, for the
initialisation check.

The activation statistics are read by forward hooks on each block's activation
module while the real forward runs (``ActivationRecorder``): what the probes see is
what the network computes.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch

from trainrx.network import Network

RELU_FAMILY = {"relu", "leaky_relu", "prelu"}
# |pre-activation| beyond which the output is within 1% of its bound (sigmoid: 0 or 1, tanh: -1 or 1);
# the derivative there is below 0.01.
SATURATION_LIMIT = {"sigmoid": 4.6, "tanh": 2.65}
PROBE_SAMPLES = 512
FIRST_STEPS = 50
SAMPLES_PER_EPOCH = 10


def _never_positive(pre: torch.Tensor) -> torch.Tensor:
    """The share of units (dim 1: features, or channels) not positive for any sample or position."""
    return (pre <= 0).transpose(0, 1).flatten(1).all(dim=1).float().mean()


@contextmanager
def recording(model: Network, activation: str) -> Iterator[dict[str, list[torch.Tensor]]]:
    """While open, every forward of ``model`` appends, per block input to output (as device
    tensors, no sync): activation variance, and the dead or saturated fractions where they apply.
    Read through forward hooks on each block's activation module: its input is the
    pre-activation, its output the activation."""
    stats: dict[str, list[torch.Tensor]] = {"activation_variance": [], "dead_fraction": [],
                                             "saturated_fraction": []}

    def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        pre = inputs[0]
        stats["activation_variance"].append(out.float().var(unbiased=False))
        if activation in RELU_FAMILY:
            stats["dead_fraction"].append(_never_positive(pre))
        if activation in SATURATION_LIMIT:
            stats["saturated_fraction"].append((pre.abs() > SATURATION_LIMIT[activation]).float().mean())

    handles = [block.act.register_forward_hook(hook) for _, block in model.blocks()]
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()
        for key in [k for k, v in stats.items() if not v]:
            del stats[key]


def stats_to_lists(stats: dict[str, list[torch.Tensor]], names: list[str]) -> dict[str, dict[str, float]]:
    """One host sync for all of them."""
    keys = list(stats)
    flat = torch.stack([t for k in keys for t in stats[k]]).tolist() if keys else []
    out, i = {}, 0
    for k in keys:
        out[k] = dict(zip(names, flat[i:i + len(stats[k])]))
        i += len(stats[k])
    return out


def block_names(model: Network) -> list[str]:
    return [name for name, _ in model.blocks()]


@torch.inference_mode()
def activation_stats(model: Network, x: torch.Tensor, activation: str) -> dict:
    """The activation statistics of one eval-mode forward of ``x``."""
    was_training = model.training
    model.eval()
    with recording(model, activation) as stats:
        model(x)
    model.train(was_training)
    return stats_to_lists(stats, block_names(model))


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


class Probes:
    """Collects the probe values of one run; the loop calls it at fixed points."""

    def __init__(self, model: Network, x_probe: torch.Tensor, activation: str, layer_names: list[str],
                 steps_per_epoch: int) -> None:
        self.model = model
        self.x_probe = x_probe[:PROBE_SAMPLES]
        self.activation = activation
        self.layer_names = layer_names
        self.every = max(1, steps_per_epoch // SAMPLES_PER_EPOCH)
        self.steps: dict[str, list] = {"step": [], "epoch": [], "loss": [], "grad_norm": []}
        self.initial = activation_stats(model, self.x_probe, activation) if block_names(model) else {}
        self._grad_max: torch.Tensor | None = None
        self._start: list[torch.Tensor] = []
        self._nonfinite_grads = False

    def state_dict(self) -> dict:
        """What a checkpoint taken between epochs needs: the sampled steps so far and the
        initialisation statistics. The per-epoch accumulators start afresh every epoch."""
        return {"steps": self.steps, "initial": self.initial}

    def load_state_dict(self, state: dict) -> None:
        self.steps = {k: list(v) for k, v in state["steps"].items()}
        self.initial = state["initial"]

    def epoch_start(self, weights: list[torch.Tensor]) -> None:
        self._grad_max = torch.zeros(len(weights), device=weights[0].device)
        self._start = [w.detach().clone() for w in weights]
        self._nonfinite_grads = False

    def sampled(self, global_step: int, step_in_epoch: int) -> bool:
        return global_step <= FIRST_STEPS or step_in_epoch % self.every == 0

    def on_step(self, norms: torch.Tensor) -> None:
        """Every step, without a host sync: keep the largest gradient norm per layer."""
        torch.maximum(self._grad_max, norms, out=self._grad_max)

    def record_step(self, global_step: int, epoch: int, loss: float, norms: torch.Tensor) -> None:
        total = torch.linalg.vector_norm(norms).item()
        self._nonfinite_grads |= not math.isfinite(total)
        self.steps["step"].append(global_step)
        self.steps["epoch"].append(epoch)
        self.steps["loss"].append(_finite(loss))
        self.steps["grad_norm"].append(_finite(total))

    def record_steps(self, epoch: int, sampled: list[tuple[int, torch.Tensor, torch.Tensor]]) -> None:
        """``record_step`` for each (global step, batch loss, per-layer gradient norms) kept
        during the epoch as device tensors: one host sync for all of them."""
        values = torch.stack([torch.stack([loss.float(), torch.linalg.vector_norm(norms).float()])
                              for _, loss, norms in sampled]).tolist()
        for (step, _, _), (loss, total) in zip(sampled, values):
            self._nonfinite_grads |= not math.isfinite(total)
            self.steps["step"].append(step)
            self.steps["epoch"].append(epoch)
            self.steps["loss"].append(_finite(loss))
            self.steps["grad_norm"].append(_finite(total))

    def epoch_values(self, weights: list[torch.Tensor], activations: dict | None) -> dict:
        """The epoch's probe values; ``activations`` are the statistics the evaluation pass over
        the training samples collected (``recording``)."""
        with torch.no_grad():
            weight_norms = torch.stack(torch._foreach_norm([w.detach() for w in weights]))
            deltas = torch._foreach_sub([w.detach() for w in weights], self._start)
            update_norms = torch.stack(torch._foreach_norm(deltas))
            packed = torch.cat([self._grad_max, weight_norms, update_norms]).tolist()
        n = len(weights)
        grad_max, w_norm, u_norm = packed[:n], packed[n:2 * n], packed[2 * n:]
        values = {
            "grad_norm_max": {k: _finite(v) for k, v in zip(self.layer_names, grad_max)},
            "weight_norm": {k: _finite(v) for k, v in zip(self.layer_names, w_norm)},
            "update_ratio": {k: _finite(u / w) if w > 0 else None
                             for k, u, w in zip(self.layer_names, u_norm, w_norm)},
        }
        nonfinite = self._nonfinite_grads or any(not math.isfinite(v) for v in w_norm + grad_max)
        if activations and not nonfinite:
            stats = stats_to_lists(activations, block_names(self.model))
            values.update({k: {n_: _finite(v) for n_, v in d.items()} for k, d in stats.items()})
        values["nonfinite"] = nonfinite
        return values
