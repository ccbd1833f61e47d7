"""Fixes as JSON merge patches (RFC 7396) on the job's normalised request, written from its
typed config.

Every field of the request can be the cause of a bad run, so every knob has a fix here:
optimizer and learning rate, momentum, activation, initialisation, batch norm, residual
connections, depth and width, epochs, batch size, the regularisers and patience (the last
two as overfitting's fixes in recipe.py).

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


def lower_momentum(config: JobConfig, to: float) -> dict | None:
    """Momentum (momentum, nesterov) down to ``to``: the effective step is lr / (1 - momentum)."""
    momentum = config.optimizer.momentum
    return {"optimizer": {"momentum": to}} if momentum is not None and momentum > to else None


def smaller_steps(config: JobConfig, factor: float, high_momentum: float, lower_to: float) -> dict | None:
    """The learning rate times ``factor`` and, when momentum is at least ``high_momentum``, the
    momentum down to ``lower_to`` in the same patch; None without such momentum (the learning
    rate alone is its own suggestion)."""
    momentum = config.optimizer.momentum
    lr, calmer = learning_rate(config, factor), lower_momentum(config, lower_to)
    if lr is None or calmer is None or momentum < high_momentum:
        return None
    return {"optimizer": {**lr["optimizer"], **calmer["optimizer"]}}


def batch_size(config: JobConfig, factor: float, smallest: int = 8) -> dict | None:
    """The batch size times ``factor`` (at least ``smallest``): smaller batches take more,
    noisier steps per epoch."""
    new = max(smallest, int(config.batch_size * factor))
    return None if new == config.batch_size else {"batch_size": new}


def epochs(config: JobConfig, factor: int = 3) -> dict | None:
    new = min(config.epochs * factor, 10_000)
    return None if new == config.epochs else {"epochs": new}


def combine(*patches: dict | None) -> dict | None:
    """Several patches as one (their top-level keys must not overlap), or None if any is None."""
    if any(p is None for p in patches):
        return None
    out: dict = {}
    for patch in patches:
        out.update(patch)
    return out


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


def shallower(config: JobConfig) -> dict | None:
    """Half the dense hidden layers (at least one): fewer layers for the gradient to cross."""
    layers = config.architecture.hidden_layers
    if len(layers) < 2:
        return None
    return architecture(hidden_layers=list(layers[:max(1, len(layers) // 2)]))


def deeper(config: JobConfig) -> dict | None:
    """One more dense hidden layer as wide as the last: more capacity to fit the training data."""
    layers = config.architecture.hidden_layers
    if not layers or config.architecture.is_cnn:
        return None
    return architecture(hidden_layers=[*layers, layers[-1]])


def regularizers_on(config: JobConfig) -> dict:
    return {key: value for key, value in dataclasses.asdict(config.regularization).items() if value}


def without_regularization(config: JobConfig) -> dict | None:
    """Every regularisation knob the request turned on (L1, L2, dropout), off."""
    on = {key: 0.0 for key, value in dataclasses.asdict(config.regularization).items() if value}
    return {"regularization": on} if on else None


def suggestion(patch: dict | None, why: str) -> dict | None:
    return None if patch is None else {"patch": patch, "why": why}
