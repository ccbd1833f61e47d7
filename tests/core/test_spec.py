"""The request specification: validation, normalisation, limits."""

from __future__ import annotations

import copy
import json

import pytest
from marshmallow import ValidationError

from core.settings import Limits
from core.spec import ACTIVATIONS, OPTIMIZERS, merge_patch, normalise

BASE = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [16]}}


def with_(path: str, value):
    request = copy.deepcopy(BASE)
    node = request
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return request


def errors_of(request: dict, limits: Limits | None = None) -> dict:
    with pytest.raises(ValidationError) as info:
        normalise(request, limits=limits or Limits(), resolver=None)
    return info.value.messages


def test_defaults_are_filled_in_and_shorthands_become_objects():
    spec = normalise(BASE, limits=Limits(), resolver=None)
    assert spec["activation"] == {"name": "relu"}
    assert spec["optimizer"] == {"name": "adam", "learning_rate": 0.001, "betas": [0.9, 0.999], "eps": 1e-8}
    assert spec["regularization"] == {"l1": 0.0, "l2": 0.0, "dropout": 0.0}
    assert spec["dataset"] == {"name": "digits", "validation_split": 0.2, "train_samples": None, "split_seed": 0,
                               "task": "classification", "input_shape": [1, 8, 8]}
    assert spec["architecture"] == {"type": "mlp", "hidden_layers": [16], "batch_norm": False, "residual": False,
                                    "init": "default"}
    assert spec["loss"] == "cross_entropy"
    assert spec["patience"] is None and "early_stopping" not in spec
    assert spec["max_runtime_s"] == Limits().default_runtime_s


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_normalises_to_itself(name):
    spec = normalise(with_("activation", name), limits=Limits(), resolver=None)
    assert spec["activation"]["name"] == name
    assert normalise(json.loads(json.dumps(spec)), limits=Limits(), resolver=None) == spec


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_normalises_to_itself(name):
    spec = normalise(with_("optimizer", name), limits=Limits(), resolver=None)
    assert spec["optimizer"]["name"] == name and spec["optimizer"]["learning_rate"] > 0
    assert normalise(json.loads(json.dumps(spec)), limits=Limits(), resolver=None) == spec


def test_shorthand_and_object_forms_are_the_same_request():
    a = normalise(with_("activation", "leaky_relu"), limits=Limits(), resolver=None)
    b = normalise(with_("activation", {"name": "leaky_relu", "negative_slope": 0.01}), limits=Limits(), resolver=None)
    assert a == b


def test_only_the_components_own_knobs_are_kept():
    spec = normalise(with_("optimizer", {"name": "momentum", "learning_rate": 0.1}), limits=Limits(), resolver=None)
    assert spec["optimizer"] == {"name": "momentum", "learning_rate": 0.1, "momentum": 0.9}
    assert errors_of(with_("optimizer", {"name": "adam", "momentum": 0.9})) == {
        "optimizer": {"momentum": ["Unknown field."]}}


def test_patience_brings_early_stopping_defaults():
    spec = normalise(with_("patience", 3), limits=Limits(), resolver=None)
    assert spec["early_stopping"] == {"monitor": "val_loss", "min_delta": 0.0, "restore_best": True}


@pytest.mark.parametrize("path,value,where", [
    ("name", "x" * 101, ["name"]),
    ("dataset.name", "imagenet", ["dataset", "name"]),
    ("dataset.validation_split", 0.0, ["dataset", "validation_split"]),
    ("dataset.validation_split", 0.6, ["dataset", "validation_split"]),
    ("dataset.train_samples", 0, ["dataset", "train_samples"]),
    ("dataset.split_seed", -1, ["dataset", "split_seed"]),
    ("architecture.hidden_layers", [], ["architecture", "hidden_layers"]),
    ("architecture.hidden_layers", [8] * 65, ["architecture", "hidden_layers"]),
    ("architecture.hidden_layers", [0], ["architecture", "hidden_layers"]),
    ("architecture.hidden_layers", [4097], ["architecture", "hidden_layers"]),
    ("architecture.hidden_layers", [4096, 4096, 4096], ["architecture", "hidden_layers"]),
    ("architecture.batch_norm", "yes", ["architecture", "batch_norm"]),
    ("architecture.init", "zeros", ["architecture", "init"]),
    ("activation", "softmax", ["activation", "name"]),
    ("activation", {"name": "maxout", "pieces": 9}, ["activation", "pieces"]),
    ("activation", {"name": "leaky_relu", "negative_slope": 1.5}, ["activation", "negative_slope"]),
    ("activation", 3, ["activation"]),
    ("optimizer", {"name": "sgd", "learning_rate": 0}, ["optimizer", "learning_rate"]),
    ("optimizer", {"name": "sgd", "learning_rate": 101}, ["optimizer", "learning_rate"]),
    ("optimizer", {"name": "rmsprop", "alpha": 1.0}, ["optimizer", "alpha"]),
    ("optimizer", {"name": "adam", "betas": [0.9]}, ["optimizer", "betas"]),
    ("regularization.l2", -1, ["regularization", "l2"]),
    ("regularization.dropout", 1.0, ["regularization", "dropout"]),
    ("patience", 0, ["patience"]),
    ("early_stopping", {"monitor": "val_loss"}, ["early_stopping"]),
    ("epochs", 0, ["epochs"]),
    ("epochs", 10_001, ["epochs"]),
    ("epochs", 2.5, ["epochs"]),
    ("batch_size", 65_537, ["batch_size"]),
    ("seed", 2**32, ["seed"]),
    ("device", "tpu", ["device"]),
    ("max_runtime_s", 3601, ["max_runtime_s"]),
    ("surprise", 1, ["surprise"]),
])
def test_each_invalid_field_is_named(path, value, where):
    node = errors_of(with_(path, value))
    for key in where:
        assert key in node, (where, node)
        node = node[key]
    assert node


def test_every_bad_field_is_reported_at_once():
    errors = errors_of({"dataset": {"name": "nope"}, "architecture": {"hidden_layers": [0]}, "epochs": 0,
                        "activation": "nope"})
    assert set(errors) == {"dataset", "architecture", "epochs", "activation"}


def test_limits_come_from_the_operator():
    tight = Limits(max_epochs=5, max_parameters=1000)
    assert "epochs" in errors_of(with_("epochs", 6), tight)
    assert set(errors_of(with_("architecture.hidden_layers", [64]), tight)) == {"architecture", "epochs"}
    loose = Limits(max_epochs=5, max_parameters=10_000)
    assert normalise(with_("epochs", 5), limits=loose, resolver=None)["epochs"] == 5


def test_batch_norm_needs_batches_of_two():
    assert "batch_size" in errors_of({**with_("architecture.batch_norm", True), "batch_size": 1})


def test_merge_patch_follows_rfc_7396():
    spec = normalise(with_("optimizer", "momentum"), limits=Limits(), resolver=None)
    patched = merge_patch(spec, {"optimizer": {"name": "adam", "momentum": None}})
    assert patched["optimizer"] == {"name": "adam", "learning_rate": 0.01}
    assert normalise(patched, limits=Limits(), resolver=None)["optimizer"]["betas"] == [0.9, 0.999]
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


def test_nul_characters_never_reach_the_database():
    assert errors_of(with_("name", "a\x00b")) == {"name": ["Must not contain NUL characters."]}
