"""Fixes as JSON merge patches (RFC 7396) on the job's normalised request.

A patch that changes a component (activation, optimizer) names the new
component with its default knobs and sets every knob that no longer applies to
null, so that applying it gives a valid request.
"""

from __future__ import annotations

from core.spec import ACTIVATIONS, OPTIMIZERS

MAX_LEARNING_RATE = 100.0
# Learning rates that usually train small MLPs with each optimizer: where a "stuck" run's rate is raised to.
TYPICAL_LEARNING_RATE = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01, "rmsprop": 0.001,
                         "adam": 0.001, "adamw": 0.001}


def _switch(current: dict, variants: dict, name: str, **knobs) -> dict:
    target = variants[name]().load({"name": name, **knobs})
    patch = dict(target)
    for key in current:
        if key not in target:
            patch[key] = None
    return patch


def activation(request: dict, name: str, **knobs) -> dict:
    return {"activation": _switch(request["activation"], ACTIVATIONS, name, **knobs)}


def optimizer(request: dict, name: str, **knobs) -> dict:
    return {"optimizer": _switch(request["optimizer"], OPTIMIZERS, name, **knobs)}


def learning_rate(request: dict, factor: float) -> dict | None:
    lr = request["optimizer"]["learning_rate"]
    new = float(f"{min(lr * factor, MAX_LEARNING_RATE):.3g}")
    return None if new == lr else {"optimizer": {"learning_rate": new}}


def raise_learning_rate(request: dict) -> dict | None:
    """At least 10 times larger, and at least the optimizer's typical rate."""
    lr = request["optimizer"]["learning_rate"]
    typical = TYPICAL_LEARNING_RATE[request["optimizer"]["name"]]
    return learning_rate(request, max(10.0, typical / lr))


def architecture(**changes) -> dict:
    return {"architecture": changes}


def init_for(activation_name: str) -> str:
    return "xavier_normal" if activation_name in ("sigmoid", "tanh") else "kaiming_normal"


def has_equal_width_neighbours(request: dict) -> bool:
    widths = request["architecture"]["hidden_layers"]
    return any(a == b for a, b in zip(widths, widths[1:]))


def suggestion(patch: dict | None, why: str) -> dict | None:
    return None if patch is None else {"patch": patch, "why": why}
