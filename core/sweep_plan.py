"""What a sweep runs: its body (POST /v1/sweeps), and the plan it expands to.

A plan is every combination (the grid's cartesian product, crossed with the random draws)
times every seed, each with its varied values and its request, validated like any job's
before a single child is queued. Pure Python: the API builds the plan, the sweep's rows keep
it, and the workers read it back to create the next children.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random as random_module
from typing import Any, Callable

from marshmallow import ValidationError, fields, validate, validates_schema

from core.settings import Limits
from core.spec import ACTIVATIONS, OPTIMIZERS, DatasetResolver, JobRequestSchema, merge_patch, normalise
from core.spec_components import Component, Strict, strict_int

MAX_PARALLEL = 16  # unfinished children of one sweep at a time, at most
DEFAULT_PARALLEL = 4
MAX_SEED = 2**32 - 1
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")
# Components: a value that names another variant keeps only the knobs that variant has.
COMPONENTS = {"activation": ACTIVATIONS, "optimizer": OPTIMIZERS}
DEFAULT_COMPONENT = {"activation": "relu", "optimizer": "adam"}
REPORTED_BAD = 5  # bad combinations named in a 422's errors, at most


class SweepInvalid(Exception):
    """The sweep cannot run: ``message`` says why, ``errors`` names the fields (a 422)."""

    def __init__(self, message: str, errors: dict) -> None:
        super().__init__(message)
        self.message, self.errors = message, errors


class RandomSpec(Strict):
    n = strict_int(required=True, validate=validate.Range(min=1),
                   metadata={"description": "Random draws in all, each crossed with every grid point."})
    seed = strict_int(load_default=0, validate=validate.Range(min=0, max=MAX_SEED),
                      metadata={"description": "Seeds the draws: the same seed draws the same values."})
    space = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True,
                        validate=validate.Length(min=1), metadata={
                            "description": "Dotted path -> one of {\"log_uniform\": [lo, hi]}, "
                                           "{\"uniform\": [lo, hi]}, {\"int_uniform\": [lo, hi]}, "
                                           "{\"choice\": [values...]}."})

    @validates_schema
    def _distributions(self, data: dict, **kwargs: Any) -> None:
        errors = {path: [problem] for path, dist in (data.get("space") or {}).items()
                  if (problem := distribution_problem(dist))}
        if errors:
            raise ValidationError({"space": errors})


class SweepRequestSchema(Strict):
    """A sweep (POST /v1/sweeps): one base request, the values to vary, and the seeds."""

    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    base = fields.Dict(required=True, metadata={"description": "A training request, as POST /v1/jobs takes."})
    grid = fields.Dict(keys=fields.String(), values=fields.List(fields.Raw(allow_none=True),
                                                                validate=validate.Length(min=1)),
                       load_default=dict, metadata={
                           "description": "Dotted path (`optimizer.learning_rate`) -> the values to try; the "
                                          "sweep runs the cartesian product."})
    random = fields.Nested(RandomSpec, load_default=None, allow_none=True)
    seeds = fields.List(strict_int(validate=validate.Range(min=0, max=MAX_SEED)), load_default=None,
                        allow_none=True, validate=validate.Length(min=1), metadata={
                            "description": "Every combination runs once per seed (the seed replaces the "
                                           "request's `seed`); null: once, with the base's seed."})
    max_parallel = strict_int(load_default=DEFAULT_PARALLEL, validate=validate.Range(min=1, max=MAX_PARALLEL),
                              metadata={"description": "Unfinished children at a time."})


def distribution_problem(dist: Any) -> str | None:
    """Why a random space entry is not a distribution, or None."""
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        return f"Must be an object with exactly one of: {', '.join(DISTRIBUTIONS)}."
    kind, arg = next(iter(dist.items()))
    if kind == "choice":
        return None if isinstance(arg, list) and arg else "choice needs a non-empty list of values."
    if not (isinstance(arg, list) and len(arg) == 2 and all(_number(v) for v in arg)):
        return f"{kind} needs [lo, hi], two numbers."
    lo, hi = arg
    if kind == "int_uniform" and not all(isinstance(v, int) for v in arg):
        return "int_uniform needs two integers."
    if lo > hi or (kind != "int_uniform" and lo == hi):
        return f"{kind} needs lo < hi."
    if kind == "log_uniform" and lo <= 0:
        return "log_uniform needs lo > 0."
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_body(payload: Any) -> dict:
    """The body checked and with its defaults; raises SweepInvalid."""
    if not isinstance(payload, dict):
        raise SweepInvalid("The body must be a JSON object.", {"_schema": ["The body must be a JSON object."]})
    try:
        return SweepRequestSchema().load(payload)
    except ValidationError as exc:
        raise SweepInvalid("The sweep is invalid.", exc.messages) from exc


# --- paths ----------------------------------------------------------------

def path_problem(path: str) -> str | None:
    """Why a dotted path does not address a field of a training request, or None."""
    if path == "seed":
        return "The seed is varied with `seeds`, not in the grid or the random space."
    schema_fields = JobRequestSchema().fields
    keys = path.split(".")
    for i, key in enumerate(keys):
        field = schema_fields.get(key)
        rest = keys[i + 1:]
        if field is None:
            break
        if not rest:
            return None
        if isinstance(field, Component):
            knobs = set().union(*(variant().fields for variant in field.variants.values()))
            if len(rest) == 1 and rest[0] in knobs:
                return None
            break
        if not isinstance(field, fields.Nested):
            break
        schema_fields = field.schema.fields
    return f"Unknown path {path!r}: no such field in a training request."


# --- expansion ------------------------------------------------------------

def draws(spec: dict | None) -> list[dict]:
    """The random draws, in order: the same ``seed`` always draws the same values."""
    if not spec:
        return [{}]
    rng = random_module.Random(spec["seed"])
    return [{path: _draw(rng, dist) for path, dist in spec["space"].items()} for _ in range(spec["n"])]


def _draw(rng: random_module.Random, dist: dict) -> Any:
    kind, arg = next(iter(dist.items()))
    if kind == "choice":
        return copy.deepcopy(arg[rng.randrange(len(arg))])
    lo, hi = arg
    if kind == "int_uniform":
        return rng.randint(lo, hi)
    value = rng.uniform(lo, hi) if kind == "uniform" else math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return float(f"{value:.4g}")  # readable in a results table; four digits are finer than any sweep's step


def combinations(body: dict) -> list[dict]:
    """Every combination's varied values (grid point x draw), in order: the grid's last path
    varies fastest, then the draws."""
    grid = body.get("grid") or {}
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    return [{**point, **draw} for point in points for draw in draws(body.get("random"))]


def size_of(body: dict) -> int:
    grid = math.prod(len(values) for values in (body.get("grid") or {}).values())
    n = body["random"]["n"] if body.get("random") else 1
    return grid * n * len(body.get("seeds") or [None])


def apply(base: dict, values: dict, seed: int | None) -> dict:
    """``base`` with ``values`` set (shallow paths first, each as a JSON merge patch) and ``seed``.

    A value that switches a component (``activation: "sigmoid"``, ``optimizer.name: "adam"``)
    keeps only the knobs the new variant has, as a diagnosis patch does."""
    request = copy.deepcopy(base) if isinstance(base, dict) else {}
    for path in sorted(values, key=lambda p: p.count(".")):
        keys, value = path.split("."), copy.deepcopy(values[path])
        if keys[0] in COMPONENTS:
            request[keys[0]] = _set_component(keys[0], request.get(keys[0]), keys[1:], value)
        else:
            request = merge_patch(request, _nested(keys, value))
    if seed is not None:
        request["seed"] = seed
    return request


def _nested(keys: list[str], value: Any) -> dict:
    patch = value
    for key in reversed(keys):
        patch = {key: patch}
    return patch


def _set_component(kind: str, current: Any, keys: list[str], value: Any) -> Any:
    variants = COMPONENTS[kind]
    if current is None:
        current = DEFAULT_COMPONENT[kind]
    if isinstance(current, str):
        current = {"name": current}
    change = _nested(keys, value) if keys else value
    if isinstance(change, str):
        change = {"name": change}
    if not isinstance(current, dict) or not isinstance(change, dict):
        return change  # not a component: validation names the field
    name = change.get("name")
    if isinstance(name, str) and name != current.get("name") and name in variants:
        knobs = variants[name]().fields
        current = {k: v for k, v in current.items() if k in knobs}
    return merge_patch(current, change)


def plan(body: dict, *, limits: Limits, resolver: DatasetResolver | None, max_size: int) -> list[dict]:
    """Every child the sweep runs, in order: ``{"index", "combination", "values", "seed", "request"}``
    (the normalised request). Raises SweepInvalid naming an unknown path, the cap, or the bad
    combinations (their values) and their bad fields, before anything is queued."""
    paths = {"grid": list(body.get("grid") or {}), "random": list(((body.get("random") or {}).get("space")) or {})}
    unknown = {where: {path: [problem]} for where, found in paths.items() for path in found
               if (problem := path_problem(path))}
    if unknown:
        first = next(iter(next(iter(unknown.values())).values()))[0]
        raise SweepInvalid(first, {where if where == "grid" else "random": (
            problems if where == "grid" else {"space": problems}) for where, problems in unknown.items()})
    size = size_of(body)
    if size > max_size:
        raise SweepInvalid(f"The sweep has {size} runs (combinations x seeds); one sweep may have at most "
                           f"{max_size} (TRAINRX_MAX_SWEEP_SIZE).", {"size": [f"At most {max_size} runs (combinations x seeds); this sweep has {size}."]})
    seeds = body.get("seeds") or [None]
    children, bad = [], {}
    for number, values in enumerate(combinations(body)):
        for seed in seeds:
            try:
                request = normalise(apply(body["base"], values, seed), limits=limits, resolver=resolver)
            except ValidationError as exc:
                if len(bad) < REPORTED_BAD:
                    bad[str(number)] = {"values": values, "seed": seed, "errors": exc.messages}
                break  # its other seeds fail the same way
            children.append({"index": len(children), "combination": number, "values": values,
                             "seed": request["seed"], "request": request})
    if bad:
        number, first = next(iter(bad.items()))
        where, problem = first_error(first["errors"])
        shown = describe(first["values"]) or "the base request"
        more = f" ({len(bad)} bad combinations shown in errors)" if len(bad) > 1 else ""
        raise SweepInvalid(f"Combination {number} ({shown}) is invalid: {where}: {problem}{more}",
                           {"combinations": bad})
    return children


def first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """The first bad field of marshmallow's messages, as (dotted path, message)."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            return first_error(value, path)
    if isinstance(messages, list) and messages:
        return first_error(messages[0], prefix) if not isinstance(messages[0], str) else (prefix or "body",
                                                                                           messages[0])
    return prefix or "body", str(messages)


def describe(values: dict, render: Callable[[Any], str] | None = None) -> str:
    """``path=value, ...`` for messages and tables."""
    show = render or (lambda v: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
    return ", ".join(f"{path}={show(value)}" for path, value in values.items())
