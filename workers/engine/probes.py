"""Probes: what the diagnosis needs to see inside training, collected cheaply.

Per step, at sampled steps only (every step at the start, where an explosion
can happen and be over inside epoch 1, then about ten a epoch): the batch loss
and the total gradient norm. Per epoch: the largest per-layer gradient norm,
weight norms and update/weight ratios, and, on a fixed batch of training
samples in eval mode, per hidden layer the fraction of ReLU-family units that
never activate, the fraction of sigmoid/tanh pre-activations in the flat
range, and the activation variance. The same activation statistics are taken
once before the first step, for the initialisation check.
"""

from __future__ import annotations

import math

import torch

from workers.engine.model import MLP

RELU_FAMILY = {"relu", "leaky_relu", "prelu"}
# |pre-activation| beyond which the output is within 1% of its bound (sigmoid: 0 or 1, tanh: -1 or 1);
# the derivative there is below 0.01.
SATURATION_LIMIT = {"sigmoid": 4.6, "tanh": 2.65}
PROBE_SAMPLES = 512
FIRST_STEPS = 50
SAMPLES_PER_EPOCH = 10


@torch.inference_mode()
def activation_stats(model: MLP, x: torch.Tensor, activation: str) -> dict:
    """Per hidden layer: activation variance, and dead or saturated fractions where they apply."""
    was_training = model.training
    model.eval()
    names, variances, dead, saturated = [], [], [], []
    h = x
    for i, block in enumerate(model.hidden):
        pre = block.pre_activation(h)
        out = block.act(pre)
        names.append(f"hidden{i + 1}")
        variances.append(out.float().var(unbiased=False))
        if activation in RELU_FAMILY:
            dead.append((pre <= 0).all(dim=0).float().mean())
        if activation in SATURATION_LIMIT:
            saturated.append((pre.abs() > SATURATION_LIMIT[activation]).float().mean())
        h = h + out if block.residual else out
    model.train(was_training)
    values = torch.stack(variances + dead + saturated).tolist()
    n = len(names)
    stats = {"activation_variance": dict(zip(names, values[:n]))}
    if dead:
        stats["dead_fraction"] = dict(zip(names, values[n:2 * n]))
    if saturated:
        stats["saturated_fraction"] = dict(zip(names, values[len(values) - n:]))
    return stats


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


class Probes:
    """Collects the probe values of one run; the loop calls it at fixed points."""

    def __init__(self, model: MLP, x_probe: torch.Tensor, activation: str, layer_names: list[str],
                 steps_per_epoch: int) -> None:
        self.model = model
        self.x_probe = x_probe[:PROBE_SAMPLES]
        self.activation = activation
        self.layer_names = layer_names
        self.every = max(1, steps_per_epoch // SAMPLES_PER_EPOCH)
        self.steps: dict[str, list] = {"step": [], "epoch": [], "loss": [], "grad_norm": []}
        self.initial = activation_stats(model, self.x_probe, activation) if len(model.hidden) else {}
        self._grad_max: torch.Tensor | None = None
        self._start: list[torch.Tensor] = []
        self._nonfinite_grads = False

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

    def epoch_values(self, weights: list[torch.Tensor], x_probe_ok: bool = True) -> dict:
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
        if len(self.model.hidden) and not nonfinite:
            stats = activation_stats(self.model, self.x_probe, self.activation)
            values.update({k: {n_: _finite(v) for n_, v in d.items()} for k, d in stats.items()})
        values["nonfinite"] = nonfinite
        return values
