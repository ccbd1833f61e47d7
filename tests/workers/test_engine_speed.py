"""The engine's speed-ups change no result: the multi-tensor optimizers step exactly like the
per-tensor ones, and a pass that reads its losses once per epoch stops a diverging run exactly
where a per-step check does (same step, log, probes and weights), also when a cancel or the
deadline comes later in that epoch. How fast it is, is bench/engine.py's business (no timings here)."""

from __future__ import annotations

import hashlib
import itertools

import pytest
import torch

from core.datasets import BUILTIN_DATASETS, load_builtin
from core.settings import Limits
from core.spec import normalise
from core.stop_reasons import CANCELLED, DIVERGED, TIME_LIMIT
from workers.engine import loop
from workers.engine.config import JobConfig, OptimizerConfig
from workers.engine.data import prepare
from workers.engine.objective import objective_for
from workers.engine.optim import build_optimizer

OPTIMIZERS = [
    OptimizerConfig("sgd", 0.1), OptimizerConfig("momentum", 0.1, momentum=0.9),
    OptimizerConfig("nesterov", 0.1, momentum=0.9), OptimizerConfig("adagrad", 0.05),
    OptimizerConfig("rmsprop", 0.01, alpha=0.99), OptimizerConfig("adam", 0.01, betas=(0.9, 0.999), eps=1e-8),
    OptimizerConfig("adamw", 0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
]


@pytest.mark.parametrize("spec", OPTIMIZERS, ids=lambda s: s.name)
def test_the_multi_tensor_optimizers_step_bit_for_bit_like_the_per_tensor_ones(spec):
    weights = {}
    for foreach in (True, False):
        torch.manual_seed(0)
        params = [torch.randn(33, 17, requires_grad=True), torch.randn(17, requires_grad=True),
                  torch.randn(5, 33, requires_grad=True)]
        optimizer = build_optimizer(spec, params)
        assert optimizer.param_groups[0]["foreach"] is True
        for group in optimizer.param_groups:
            group["foreach"] = foreach
        for step in range(30):  # gradients of very different sizes, the rounding-prone case
            for p in params:
                p.grad = torch.randn_like(p) * (1e3 if step % 7 == 0 else 1e-3 if step % 5 == 0 else 1.0)
            optimizer.step()
        weights[foreach] = [p.detach().clone() for p in params]
    assert all(torch.equal(a, b) for a, b in zip(weights[True], weights[False]))


def _config(**overrides) -> JobConfig:
    """A run that diverges in the middle of an epoch (at step 8 of 15), with dropout (the
    replayed pass must draw the same masks) and probes."""
    request = {"dataset": {"name": "digits", "train_samples": 300}, "architecture": {"hidden_layers": [32, 32]},
               "activation": "elu", "regularization": {"dropout": 0.1},
               "optimizer": {"name": "sgd", "learning_rate": 12.0}, "batch_size": 20, "epochs": 6, **overrides}
    return JobConfig.from_request(normalise(request, limits=Limits(), resolver=None))


@pytest.fixture(scope="module")
def diverging():
    config = _config()
    data = prepare(load_builtin("digits"), config.dataset, BUILTIN_DATASETS["digits"].classes, torch.device("cpu"))
    return config, data


class Lines(loop.NoHooks):
    def __init__(self, cancel_after: int | None = None) -> None:
        self.lines: list[str] = []
        self.asked = 0
        self.cancel_after = cancel_after

    def stop_reason(self) -> str | None:
        self.asked += 1
        return CANCELLED if self.cancel_after is not None and self.asked > self.cancel_after else None

    def log(self, line: str) -> None:
        self.lines.append(line)


def _digest(model: torch.nn.Module) -> list[str]:
    return [hashlib.sha256(v.detach().contiguous().numpy().tobytes()).hexdigest() for v in model.state_dict().values()]


def _per_step_reference(config: JobConfig, data) -> dict:
    """The same run epoch by epoch with the per-step check only (the pass that reads every loss)."""
    state, objective, hooks = loop._start(config, data), objective_for(config, None), Lines()
    for epoch in range(1, config.epochs + 1):
        reason, steps, *_ = loop._train_pass(config, data, state, objective, epoch, hooks, lambda: False,
                                             exact_after=0)[0]
        if reason:
            break
    return {"epoch": epoch, "reason": reason, "steps": steps, "lines": hooks.lines,
            "probes": state.probes.steps, "weights": _digest(state.model)}


def _engine(config: JobConfig, data, hooks: Lines, **run_args) -> dict:
    result = loop.run(config, data, hooks, **run_args)
    return {"epoch": len(result.rows), "reason": result.stop_reason, "lines": hooks.lines,
            "probes": result.probes.steps}, result


def test_a_diverging_run_stops_where_a_per_step_check_stops_it(diverging):
    config, data = diverging
    reference = _per_step_reference(config, data)
    assert reference["reason"] == DIVERGED and reference["steps"] > 1, \
        "the case must diverge after the first step of an epoch to test anything"
    hooks = Lines()
    got, result = _engine(config, data, hooks)
    assert got["reason"] == DIVERGED and got["epoch"] == reference["epoch"]
    assert [line for line in got["lines"] if "non-finite at step" in line] == \
        [line for line in reference["lines"] if "non-finite at step" in line]
    assert got["probes"] == reference["probes"]
    assert None in got["probes"]["loss"]  # the diverging step is recorded, sampled or not
    assert _digest(result.model) == reference["weights"]


def test_a_cancel_or_deadline_later_in_the_diverging_epoch_does_not_hide_the_divergence(diverging):
    config, data = diverging
    reference = _per_step_reference(config, data)
    per_epoch = -(-data.x_train.shape[0] // config.batch_size)
    asked_before = (reference["epoch"] - 1) * per_epoch + reference["steps"]  # stop checks up to the diverging step
    got, _ = _engine(config, data, Lines(cancel_after=asked_before + 2))
    assert got["reason"] == DIVERGED and got["epoch"] == reference["epoch"]

    ticks = itertools.count()  # a clock past the deadline from the check after the diverging step on
    got, _ = _engine(config, data, Lines(), clock=lambda: next(ticks), deadline=asked_before + 1)
    assert got["reason"] == DIVERGED and got["epoch"] == reference["epoch"]
    assert [line for line in got["lines"] if "non-finite at step" in line] == \
        [line for line in reference["lines"] if "non-finite at step" in line]


def test_a_cancel_before_the_divergence_stops_the_run_as_cancelled(diverging):
    config, data = diverging
    got, _ = _engine(config, data, Lines(cancel_after=3))
    assert got["reason"] == CANCELLED and got["epoch"] == 0


def test_a_finite_run_reads_its_sampled_steps_like_a_per_step_check(diverging):
    config, data = diverging
    config = _config(optimizer={"name": "sgd", "learning_rate": 0.05}, epochs=2)
    reference = _per_step_reference(config, data)
    got, result = _engine(config, data, Lines())
    assert got["reason"] is None and reference["reason"] is None
    assert got["probes"] == reference["probes"] and len(got["probes"]["step"]) > 0
    assert _digest(result.model) == reference["weights"]
    assert TIME_LIMIT not in got["lines"]
