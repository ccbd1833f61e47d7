"""A job's cost as part of validation: the estimates against a hand count, and the refusals."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from core import cost
from core.datasets import DatasetShape
from core.settings import Limits
from core.spec import JobRequestSchema, normalise

UPLOAD = {"id": "a" * 32}


def resolver_for(shape: DatasetShape):
    return lambda upload_id: shape if upload_id == UPLOAD["id"] else None


def tiny(**overrides) -> dict:
    request = {"dataset": UPLOAD, "architecture": {"hidden_layers": [4]}, "batch_size": 8, "epochs": 2,
               **overrides}
    return normalise(request, limits=Limits(), resolver=resolver_for(DatasetShape(100, 2, 3)))


def errors_of(request: dict, limits: Limits, shape: DatasetShape) -> dict:
    with pytest.raises(ValidationError) as info:
        normalise(request, limits=limits, resolver=resolver_for(shape))
    return info.value.messages


def test_the_estimate_matches_a_hand_count():
    # 100 rows, 2 features, 3 classes; 2 -> 4 (relu) -> 3; adam; batch 8; 2 epochs; 20 rows held out.
    estimate = cost.estimate(tiny(), DatasetShape(100, 2, 3))
    # hidden: 2x4 matmul + 4 bias + 4 relu = 16; output: 4x3 + 3 bias = 15
    assert estimate.macs_per_sample == 31
    assert (estimate.train_samples, estimate.eval_samples) == (80, 100)
    # 2 epochs x (3 x 80 trained + 80 + 20 evaluated) x 31
    assert estimate.work == 2 * (3 * 80 + 100) * 31
    # parameters 27 x (weight, gradient, 2 adam states, step temporaries) x 4 bytes
    assert estimate.memory["parameters"] == 27 * 5 * 4
    # rows loaded and split: 100 x (2 floats + an int64 label) x 2 copies
    assert estimate.memory["dataset"] == 100 * (2 * 4 + 8) * 2
    # kept for backward per sample: input 2, linear 4, relu 4, logits and log-softmax 2 x 3;
    # plus two gradient buffers of the widest layer (4); 8 samples
    assert estimate.memory["step"] == 8 * (2 + 4 + 4 + 6 + 2 * 4) * 4
    # one chunk of 80 samples: two activations of width 4, logits and log-softmax
    assert estimate.memory["evaluation"] == 80 * (2 * 4 + 2 * 3) * 4
    assert estimate.memory_bytes == 3200 + 540 + 4480


def test_maxout_pieces_and_batch_norm_count_as_work():
    request = tiny(activation={"name": "maxout", "pieces": 2}, architecture={"hidden_layers": [4],
                                                                             "batch_norm": True})
    # hidden: 2x8 matmul + 8 bias + 2x8 batch norm + 8 maxout; output 4x3 + 3
    assert cost.forward_macs(request, 2, 3) == 16 + 8 + 16 + 8 + 15


def test_an_upload_job_over_budget_is_refused_under_cost():
    """1M rows x 100 features, 64 layers of 550 at batch 65,536: about 18 GB a step."""
    request = {"dataset": UPLOAD, "architecture": {"hidden_layers": [550] * 64}, "batch_size": 65_536}
    errors = errors_of(request, Limits(), DatasetShape(1_000_000, 100, 10))
    assert set(errors) == {"cost"}
    memory = errors["cost"]["memory_mb"][0]
    assert "TRAINRX_MAX_JOB_MEMORY_MB" in memory and "4,096 MB" in memory
    assert 17_000 < int(memory.split("about ")[1].split(" MB")[0].replace(",", "")) < 20_000
    assert "TRAINRX_MAX_WORK" in errors["cost"]["work"][0]
    # The same network at a small batch on a tenth of the rows fits.
    normalise({**request, "batch_size": 64, "epochs": 1, "dataset": {**UPLOAD, "train_samples": 100_000}},
              limits=Limits(), resolver=resolver_for(DatasetShape(1_000_000, 100, 10)))


def test_an_upload_with_more_classes_than_the_cap_is_refused():
    request = {"dataset": UPLOAD, "architecture": {"hidden_layers": [4]}}
    errors = errors_of(request, Limits(max_classes=1000), DatasetShape(50_000, 4, 5000))
    assert "TRAINRX_MAX_CLASSES" in errors["dataset"]["id"][0] and "1,000" in errors["dataset"]["id"][0]


def test_an_unknown_upload_is_refused_when_a_resolver_is_given():
    errors = errors_of({"dataset": {"id": "b" * 32}, "architecture": {"hidden_layers": [4]}}, Limits(),
                       DatasetShape(10, 2, 2))
    assert "No uploaded dataset" in errors["dataset"]["id"][0]


@pytest.mark.parametrize("name", [{}, [], 3, None, True])
def test_a_component_name_that_is_not_a_string_is_a_validation_error(name):
    request = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [4]}, "optimizer": {"name": name}}
    errors = errors_of(request, Limits(), DatasetShape(10, 2, 2))
    assert "Must be one of" in errors["optimizer"]["name"][0]


def test_the_limits_are_the_ones_passed_in_not_the_defaults():
    request = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64]}, "epochs": 50}
    assert normalise(request, limits=Limits(), resolver=None)["max_runtime_s"] == Limits().default_runtime_s
    assert normalise(request, limits=Limits(default_runtime_s=60), resolver=None)["max_runtime_s"] == 60
    errors = errors_of(request, Limits(max_work=10**9), DatasetShape(10, 2, 2))
    assert list(errors["cost"]) == ["work"] and "1e+09" in errors["cost"]["work"][0]
    assert "memory_mb" in errors_of(request, Limits(max_job_memory_mb=1), DatasetShape(10, 2, 2))["cost"]


def test_the_schema_does_not_load_without_the_operators_limits():
    with pytest.raises(TypeError, match="limits"):
        JobRequestSchema().load({"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [4]}})
