"""Fixes as JSON merge patches (RFC 7396) on the job's normalised request, written from its
typed config.

A patch that changes a component (activation, optimizer) names the new
component with its default knobs and sets every knob that no longer applies to
null, so that applying it gives a valid request.
"""

from __future__ import annotations

import dataclasses

from core.spec import ACTIVATIONS, OPTIMIZERS
from workers.engine.config import ArchitectureConfig, JobConfig

MAX_LEARNING_RATE = 100.0
# Learning rates that usually train small MLPs with each optimizer: where a "stuck" run's rate is raised to.
TYPICAL_LEARNING_RATE = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01, "rmsprop": 0.001,
                         "adam": 0.001, "adamw": 0.001}


def _switch(current, variants: dict, name: str, **knobs) -> dict:
    """``current`` is the component's config; the knobs it has set are the ones that may need nulling."""
    target = variants[name]().load({"name": name, **knobs})
    patch = dict(target)
    for key, value in dataclasses.asdict(current).items():
        if value is not None and key not in target:
            patch[key] = None
    return patch


def activation(config: JobConfig, name: str, **knobs) -> dict:
    return {"activation": _switch(config.activation, ACTIVATIONS, name, **knobs)}


def optimizer(config: JobConfig, name: str, **knobs) -> dict:
    return {"optimizer": _switch(config.optimizer, OPTIMIZERS, name, **knobs)}


def learning_rate(config: JobConfig, factor: float) -> dict | None:
    lr = config.optimizer.learning_rate
    new = float(f"{min(lr * factor, MAX_LEARNING_RATE):.3g}")
    return None if new == lr else {"optimizer": {"learning_rate": new}}


def raise_learning_rate(config: JobConfig) -> dict | None:
    """At least 10 times larger, and at least the optimizer's typical rate."""
    lr = config.optimizer.learning_rate
    typical = TYPICAL_LEARNING_RATE[config.optimizer.name]
    return learning_rate(config, max(10.0, typical / lr))


def architecture(**changes) -> dict:
    return {"architecture": changes}


def init_for(activation_name: str) -> str:
    return "xavier_normal" if activation_name in ("sigmoid", "tanh") else "kaiming_normal"


def _conv_blocks(arch: ArchitectureConfig) -> tuple:
    return arch.conv_layers if arch.is_cnn else ()


def residual_applies(config: JobConfig) -> bool:
    """Whether ``residual: true`` would add a skip connection anywhere: around a conv block whose
    output has its input's shape (same channels, stride 1, no pool), or between neighbouring
    dense layers of equal width."""
    arch = config.architecture
    widths = arch.hidden_layers
    if any(a == b for a, b in zip(widths, widths[1:])):
        return True
    shape = config.dataset.input_shape
    channels_in = shape[0] if shape else None
    for block in _conv_blocks(arch):
        same_size = block.stride == 1 and block.pool is None and block.kernel % 2 == 1  # padding k // 2
        if same_size and block.channels == channels_in:
            return True
        channels_in = block.channels
    return False


def wider(config: JobConfig) -> dict | None:
    """Twice the width everywhere: conv channels and dense layers."""
    arch = config.architecture
    changes = {}
    if arch.hidden_layers:
        changes["hidden_layers"] = [w * 2 for w in arch.hidden_layers]
    blocks = _conv_blocks(arch)
    if blocks:  # a merge patch replaces a list whole: every block, with all its keys
        changes["conv_layers"] = [{**dataclasses.asdict(block), "channels": block.channels * 2} for block in blocks]
    return architecture(**changes) if changes else None


def without_regularization(config: JobConfig) -> dict | None:
    """Every regularisation knob the request turned on (L1, L2, dropout), off."""
    on = {key: 0.0 for key, value in dataclasses.asdict(config.regularization).items() if value}
    return {"regularization": on} if on else None


def suggestion(patch: dict | None, why: str) -> dict | None:
    return None if patch is None else {"patch": patch, "why": why}
