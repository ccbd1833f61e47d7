"""The request specification for convolutional networks and regression: normal forms, and every
invalid field named (issue 10)."""

from __future__ import annotations

import json

import pytest
from marshmallow import ValidationError

from core.datasets import REGRESSION, DatasetShape
from core.settings import Limits
from core.spec import merge_patch, normalise

UPLOAD = "a" * 32
CNN = {"dataset": {"name": "mnist1d"}, "architecture": {"type": "cnn", "conv_layers": [16], "hidden_layers": []},
       "epochs": 2}
REGRESSION_REQUEST = {"dataset": {"name": "friedman1"}, "architecture": {"hidden_layers": [32]}}


def load(request: dict, limits: Limits | None = None, resolver=None) -> dict:
    return normalise(request, limits=limits or Limits(), resolver=resolver)


def errors_of(request: dict, limits: Limits | None = None, resolver=None) -> dict:
    with pytest.raises(ValidationError) as info:
        load(request, limits, resolver)
    return json.loads(json.dumps(info.value.messages))  # as the API sends them: indices become strings


def cnn(conv_layers, dataset: str = "mnist1d", **architecture) -> dict:
    return {**CNN, "dataset": {"name": dataset},
            "architecture": {"type": "cnn", "conv_layers": conv_layers, "hidden_layers": [], **architecture}}


def uploaded(shape: DatasetShape):
    return lambda upload_id: shape if upload_id == UPLOAD else None


def test_an_mlp_request_says_its_type_and_has_no_convolution_keys():
    spec = load({"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [8]}})
    assert spec["architecture"] == {"type": "mlp", "hidden_layers": [8], "batch_norm": False, "residual": False,
                                    "init": "default"}
    assert (spec["dataset"]["task"], spec["dataset"]["input_shape"], spec["loss"]) == \
        ("classification", [1, 8, 8], "cross_entropy")


def test_a_cnn_without_a_dense_head_may_leave_hidden_layers_out_an_mlp_may_not():
    cnn = {"dataset": {"name": "digits"}, "architecture": {"type": "cnn", "conv_layers": [8]}}
    assert normalise(cnn, limits=Limits(), resolver=None)["architecture"]["hidden_layers"] == []
    for architecture in ({}, {"type": "mlp"}):
        with pytest.raises(ValidationError) as caught:
            normalise({"dataset": {"name": "digits"}, "architecture": architecture}, limits=Limits(), resolver=None)
        assert caught.value.messages == {"architecture": {"hidden_layers": ["Missing data for required field."]}}


def test_bare_integers_are_blocks_with_the_defaults_and_the_normal_form_loads_to_itself():
    spec = load(cnn([8, {"channels": 16, "kernel": 5, "stride": 2, "pool": "max"}], global_pool=False))
    assert spec["architecture"] == {
        "type": "cnn",
        "conv_layers": [{"channels": 8, "kernel": 3, "stride": 1, "pool": None},
                        {"channels": 16, "kernel": 5, "stride": 2, "pool": "max"}],
        "global_pool": False, "hidden_layers": [], "batch_norm": False, "residual": False, "init": "default"}
    assert spec["dataset"]["input_shape"] == [1, 40]
    assert load(json.loads(json.dumps(spec))) == spec
    assert load(cnn([{"channels": 8}])) == load(cnn([8]))
    assert load(cnn([8]))["architecture"]["global_pool"] is True


def test_a_regression_request_gets_the_regression_defaults_and_loads_to_itself():
    spec = load({**REGRESSION_REQUEST, "patience": 3, "early_stopping": {"monitor": "val_mae"},
                 "targets": {"val_r2": 0.8}})
    assert spec["dataset"]["task"] == "regression" and spec["dataset"]["input_shape"] is None
    assert spec["loss"] == "mse"
    assert spec["early_stopping"]["monitor"] == "val_mae"
    assert spec["targets"] == {"train_r2": None, "val_r2": 0.8}
    assert load(json.loads(json.dumps(spec))) == spec
    assert load({**REGRESSION_REQUEST, "loss": "huber"})["loss"] == "huber"
    assert load({**REGRESSION_REQUEST, "loss": None})["loss"] == "mse"


def test_classification_targets_keep_their_own_keys_only():
    spec = load({"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]},
                 "targets": {"train_accuracy": 0.9, "train_r2": None}})
    assert spec["targets"] == {"train_accuracy": 0.9, "val_accuracy": None}


@pytest.mark.parametrize("request_, where", [
    ({**REGRESSION_REQUEST, "loss": "cross_entropy"}, ["loss"]),
    ({"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [4]}, "loss": "mse"}, ["loss"]),
    ({"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [4]}, "loss": "hinge"}, ["loss"]),
    ({**REGRESSION_REQUEST, "patience": 2, "early_stopping": {"monitor": "val_accuracy"}},
     ["early_stopping", "monitor"]),
    ({"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [4]}, "patience": 2,
      "early_stopping": {"monitor": "val_r2"}}, ["early_stopping", "monitor"]),
    ({**REGRESSION_REQUEST, "targets": {"train_accuracy": 0.9}}, ["targets", "train_accuracy"]),
    ({"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [4]}, "targets": {"val_r2": 0.5}},
     ["targets", "val_r2"]),
    ({**REGRESSION_REQUEST, "targets": {"train_r2": 1.5}}, ["targets", "train_r2"]),
    ({"dataset": {"name": "digits", "task": "regression"}, "architecture": {"hidden_layers": [4]}},
     ["dataset", "task"]),
    ({"dataset": {"name": "digits", "input_shape": [1, 8, 9]}, "architecture": {"hidden_layers": [4]}},
     ["dataset", "input_shape"]),
    ({"dataset": {"name": "digits", "input_shape": [64]}, "architecture": {"hidden_layers": [4]}},
     ["dataset", "input_shape"]),
    ({"dataset": {"id": UPLOAD, "input_shape": [64]}, "architecture": {"hidden_layers": [4]}},
     ["dataset", "input_shape"]),
    (cnn([8], dataset="moons"), ["architecture", "type"]),
    (cnn([8], dataset="diabetes"), ["architecture", "type"]),
    ({**CNN, "architecture": {"type": "rnn", "hidden_layers": [4]}}, ["architecture", "type"]),
    ({**CNN, "architecture": {"type": "cnn", "hidden_layers": []}}, ["architecture", "conv_layers"]),
    ({**CNN, "architecture": {"hidden_layers": [4], "conv_layers": [8]}}, ["architecture", "conv_layers"]),
    ({**CNN, "architecture": {"hidden_layers": [4], "global_pool": True}}, ["architecture", "global_pool"]),
    ({**CNN, "architecture": {"hidden_layers": []}}, ["architecture", "hidden_layers"]),
    (cnn([]), ["architecture", "conv_layers"]),
    (cnn([8] * 65), ["architecture", "conv_layers"]),
    (cnn([8, 0]), ["architecture", "conv_layers", "1", "channels"]),
    (cnn([8, 4097]), ["architecture", "conv_layers", "1", "channels"]),
    (cnn([8, True]), ["architecture", "conv_layers", "1"]),
    (cnn([8, "wide"]), ["architecture", "conv_layers", "1"]),
    (cnn([{"channels": 8, "kernel": 4}]), ["architecture", "conv_layers", "0", "kernel"]),
    (cnn([{"channels": 8, "kernel": 17}]), ["architecture", "conv_layers", "0", "kernel"]),
    (cnn([{"channels": 8, "stride": 0}]), ["architecture", "conv_layers", "0", "stride"]),
    (cnn([{"channels": 8, "pool": "min"}]), ["architecture", "conv_layers", "0", "pool"]),
    (cnn([{"channels": 8, "padding": 1}]), ["architecture", "conv_layers", "0", "padding"]),
    (cnn([{"kernel": 3}]), ["architecture", "conv_layers", "0", "channels"]),
    (cnn([8], global_pool="yes"), ["architecture", "global_pool"]),
    (cnn([8], hidden_layers=[0]), ["architecture", "hidden_layers"]),
])
def test_each_invalid_field_is_named(request_, where):
    node = errors_of(request_)
    for key in where:
        assert key in node, (where, node)
        node = node[key]
    assert node


@pytest.mark.parametrize("blocks, dataset, failing, sizes", [
    # digits 8x8: 4 -> 2 -> 1 -> 0 at the fourth pool
    ([{"channels": 4, "pool": "max"}] * 4, "digits", "3", "8x8 -> 4x4 -> 2x2 -> 1x1 -> 0x0"),
    # strides shrink it too: 8x8 -> 4x4 (stride 2) -> 2x2 (pool); 2x2; 1x1 (stride 2) -> 0x0 (pool)
    ([{"channels": 4, "stride": 2, "pool": "avg"}, 4, {"channels": 4, "stride": 2, "pool": "max"}], "digits", "2",
     "8x8 -> 2x2 -> 2x2 -> 0x0"),
    # mnist1d 40: five pools reach 1, the sixth 0
    ([{"channels": 4, "pool": "max"}] * 6, "mnist1d", "5", "40 -> 20 -> 10 -> 5 -> 2 -> 1 -> 0"),
])
def test_a_spatial_size_below_one_names_the_block(blocks, dataset, failing, sizes):
    errors = errors_of(cnn(blocks, dataset=dataset))
    assert list(errors) == ["architecture"] and list(errors["architecture"]["conv_layers"]) == [failing]
    assert sizes in errors["architecture"]["conv_layers"][failing][0]


def test_the_deepest_pooling_that_fits_is_valid():
    assert load(cnn([{"channels": 4, "pool": "max"}] * 3, dataset="digits"))
    assert load(cnn([{"channels": 4, "pool": "max"}] * 5, dataset="mnist1d"))


def test_every_bad_field_of_a_cnn_request_is_reported_at_once():
    errors = errors_of({"dataset": {"name": "digits", "task": "regression"}, "loss": "huber",
                        "architecture": {"type": "cnn", "conv_layers": [{"channels": 0, "kernel": 2}, 8, "x"],
                                         "hidden_layers": [0]},
                        "patience": 2, "early_stopping": {"monitor": "val_mae"}, "targets": {"train_r2": 0.9}})
    assert errors["architecture"]["conv_layers"]["0"].keys() == {"channels", "kernel"}
    assert "2" in errors["architecture"]["conv_layers"] and "hidden_layers" in errors["architecture"]
    assert "task" in errors["dataset"] and "loss" in errors
    assert "monitor" in errors["early_stopping"] and "train_r2" in errors["targets"]


def test_a_builtin_shape_can_be_repeated_not_changed():
    assert load({**cnn([4]), "dataset": {"name": "digits", "input_shape": [1, 8, 8]}}) == load(cnn([4], "digits"))
    assert load({"dataset": {"name": "moons", "input_shape": None}, "architecture": {"hidden_layers": [4]}})
    for name, shape in (("digits", [4, 16]), ("moons", [1, 2])):
        errors = errors_of({**cnn([4]), "dataset": {"name": name, "input_shape": shape}})
        assert "applies to uploads" in errors["dataset"]["input_shape"][0]


def test_an_upload_brings_its_task_and_shape_through_the_resolver():
    regression = uploaded(DatasetShape(200, 12, 0, task=REGRESSION, input_shape=(3, 4)))
    spec = load({"dataset": {"id": UPLOAD}, "architecture": {"type": "cnn", "conv_layers": [4],
                                                            "hidden_layers": [8]}}, resolver=regression)
    assert (spec["dataset"]["task"], spec["dataset"]["input_shape"], spec["loss"]) == ("regression", [3, 4], "mse")
    assert load(spec, resolver=regression) == spec
    flat = uploaded(DatasetShape(200, 12, 3))
    assert "type" in errors_of({"dataset": {"id": UPLOAD}, "architecture": {"type": "cnn", "conv_layers": [4],
                                                                           "hidden_layers": []}},
                               resolver=flat)["architecture"]
    spec = load({"dataset": {"id": UPLOAD, "input_shape": [1, 3, 4]},
                 "architecture": {"type": "cnn", "conv_layers": [4], "hidden_layers": []}}, resolver=flat)
    assert spec["dataset"]["input_shape"] == [1, 3, 4] and spec["dataset"]["task"] == "classification"
    assert "input_shape" in errors_of({"dataset": {"id": UPLOAD, "input_shape": [1, 13]},
                                       "architecture": {"hidden_layers": [4]}}, resolver=flat)["dataset"]


def test_without_a_resolver_an_upload_keeps_the_task_it_states():
    spec = load({"dataset": {"id": UPLOAD, "task": "regression"}, "architecture": {"hidden_layers": [4]}})
    assert spec["dataset"]["task"] == "regression" and spec["loss"] == "mse"


def test_a_cnn_over_the_parameter_cap_is_refused_under_its_blocks():
    errors = errors_of(cnn([4096, 4096], dataset="mnist-5k", global_pool=False), Limits())
    assert "parameters" in errors["architecture"]["conv_layers"][0]


def test_limits_on_blocks_come_from_the_operator():
    tight = Limits(max_hidden_layers=2, max_width=16)
    errors = errors_of(cnn([8, 8, 8]), tight)
    assert "1 to 2 blocks" in errors["architecture"]["conv_layers"][0]
    assert "channels" in errors_of(cnn([32]), tight)["architecture"]["conv_layers"]["0"]


def test_old_requests_without_the_new_keys_still_load_and_patch():
    """A request stored before issue 10, patched by a diagnosis suggestion, as the worker checks it."""
    old = {"name": None, "dataset": {"name": "digits", "validation_split": 0.2, "train_samples": None,
                                     "split_seed": 0},
           "architecture": {"hidden_layers": [16], "batch_norm": False, "residual": False, "init": "default"},
           "activation": {"name": "relu"}, "optimizer": {"name": "adam", "learning_rate": 0.001,
                                                         "betas": [0.9, 0.999], "eps": 1e-8},
           "regularization": {"l1": 0.0, "l2": 0.0, "dropout": 0.0}, "patience": 3,
           "early_stopping": {"monitor": "val_accuracy", "min_delta": 0.0, "restore_best": True},
           "epochs": 20, "batch_size": 64, "seed": 0, "device": "auto", "diagnose": True,
           "targets": {"train_accuracy": 0.9, "val_accuracy": None}, "max_runtime_s": 3600}
    patched = load(merge_patch(old, {"regularization": {"dropout": 0.2}}))
    assert patched["regularization"]["dropout"] == 0.2
    assert patched["architecture"]["type"] == "mlp" and patched["loss"] == "cross_entropy"
    assert patched["targets"] == {"train_accuracy": 0.9, "val_accuracy": None}


def test_a_patch_to_another_task_nulls_what_the_old_dataset_decided():
    digits = load({"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [8]},
                   "targets": {"train_accuracy": 0.9}})
    stale = errors_of(merge_patch(digits, {"dataset": {"name": "friedman1"}}))
    assert set(stale) == {"dataset", "loss", "targets"} and set(stale["dataset"]) == {"task", "input_shape"}
    moved = load(merge_patch(digits, {"dataset": {"name": "friedman1", "task": None, "input_shape": None},
                                      "loss": None, "targets": None}))
    assert (moved["dataset"]["task"], moved["dataset"]["input_shape"], moved["loss"]) == ("regression", None, "mse")


def test_the_requests_in_docs_are_valid_and_normalise_as_shown():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "requests.md").read_text()
    pairs = re.findall(r"```json\n(.*?)```\s*\n\s*is normalised to\s*\n\s*```json\n(.*?)```", text, re.S)
    assert len(pairs) >= 2
    for given, shown in pairs:
        assert load(json.loads(given)) == json.loads(shown)
    requests = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]
    for request in requests:
        if "dataset" in request and "name" in request["dataset"]:
            load(request)
