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


def conv_request(shape: DatasetShape, **architecture) -> dict:
    request = {"dataset": UPLOAD, "batch_size": 8, "epochs": 2,
               "architecture": {"type": "cnn", "hidden_layers": [], **architecture}}
    return normalise(request, limits=Limits(), resolver=resolver_for(shape))


def test_a_1d_convolution_costs_what_a_hand_count_says():
    # 100 rows of [1, 6], 3 classes; conv 1 -> 2 channels, kernel 3, "same" padding, relu, max pool -> [2, 3];
    # flatten (6 values) -> output 3. adam, batch 8, 2 epochs, 80 training rows.
    shape = DatasetShape(100, 6, 3, input_shape=(1, 6))
    request = conv_request(shape, conv_layers=[{"channels": 2, "pool": "max"}], global_pool=False)
    estimate = cost.estimate(request, shape)
    # parameters: conv 1 x 2 x 3 weights + 2 biases = 8; output 6 x 3 + 3 = 21
    assert cost.parameters_of(cost.request_network(request, shape), request["activation"], False) == 29
    # per sample: conv 6 positions x 2 channels x (3 taps + bias + relu) = 60; pool 3 x 2 outputs x 2 read = 12;
    # output 6 x 3 + 3 = 21
    assert estimate.macs_per_sample == 60 + 12 + 21
    assert estimate.work == 2 * (3 * 80 + 100) * 93
    # kept for backward: input 6, conv output 12, relu 12, pool 6 (+ 6 int64 indices), logits and log-softmax 6;
    # two gradient buffers of the largest activation (the conv's 12 values)
    assert estimate.memory["step"] == 8 * ((6 + 12 + 12 + 6 + 6 + 2 * 12) * 4 + 6 * 8)
    assert estimate.memory["evaluation"] == 80 * (2 * 12 + 2 * 3) * 4
    assert estimate.memory["parameters"] == 29 * 5 * 4


def test_a_2d_network_matches_torch_for_parameters_and_its_weight_layers_for_compute():
    """digits [1, 8, 8]: conv 4 (8x8), conv 4 stride 2 with an avg pool (4x4 -> 2x2), global pool, dense 5, 10
    classes; batch norm and residual on. Checked against the same network in PyTorch: its parameter count,
    and the multiply-accumulates of its convolutions and matmuls (torch's FLOP counter: 2 per MAC)."""
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    shape = DatasetShape(1797, 64, 10, input_shape=(1, 8, 8))
    request = conv_request(shape, conv_layers=[4, {"channels": 4, "stride": 2, "pool": "avg"}], hidden_layers=[5],
                           batch_norm=True, residual=True)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(),
                        nn.Linear(5, 10))
    counted = cost.parameters_of(cost.request_network(request, shape), request["activation"], True)
    assert counted == sum(p.numel() for p in net.parameters()) == 299
    with FlopCounterMode(display=False) as flops:
        net.eval()(torch.zeros(1, 1, 8, 8))
    weight_macs = flops.get_total_flops() // 2
    assert weight_macs == 64 * 4 * 9 + 16 * 4 * 36 + 4 * 5 + 5 * 10
    # element-wise work on top: per conv output value bias + 2 batch norm + relu (64 x 4 and 16 x 4 values);
    # no residual sum (block 0 changes the channels, block 1 strides); the avg pool (4 outputs x 4 channels
    # x 4 read), the global pool (4 positions x 4 channels), the dense layer's bias + 2 batch norm + relu
    # (5 x 4), the output bias (10)
    elementwise = (64 * 4 + 16 * 4) * 4 + 4 * 4 * 4 + 4 * 4 + 5 * 4 + 10
    assert cost.forward_macs(request, 64, 10) == weight_macs + elementwise


def test_a_residual_block_adds_its_input_where_the_shape_is_kept():
    shape = DatasetShape(100, 40, 2, input_shape=(1, 40))
    plain = conv_request(shape, conv_layers=[4, 4, 4])
    residual = conv_request(shape, conv_layers=[4, 4, 4], residual=True)
    # blocks 1 and 2 keep [4, 40]: one add per value each; block 0 (1 -> 4 channels) cannot
    assert cost.forward_macs(residual, 40, 2) - cost.forward_macs(plain, 40, 2) == 2 * 4 * 40
    # a pooled block changes the shape: no skip connection there (block 2 pools, block 1 still adds)
    pooled = [4, 4, {"channels": 4, "pool": "max"}]
    assert cost.forward_macs(conv_request(shape, conv_layers=pooled, residual=True), 40, 2) - \
        cost.forward_macs(conv_request(shape, conv_layers=pooled), 40, 2) == 4 * 40


def test_regression_has_one_output_and_float_targets():
    shape = DatasetShape(100, 2, 0, task="regression")
    request = normalise({"dataset": UPLOAD, "architecture": {"hidden_layers": [4]}, "batch_size": 8, "epochs": 2},
                        limits=Limits(), resolver=resolver_for(shape))
    estimate = cost.estimate(request, shape)
    assert estimate.macs_per_sample == 16 + 4 * 1 + 1  # hidden as in the hand count above; output 4 x 1 + 1
    assert estimate.memory["dataset"] == 100 * (2 * 4 + 4) * 2  # a float32 target a row
    assert cost.count_parameters(2, 1, [4], request["activation"], False) == 12 + 5


def test_count_parameters_takes_conv_blocks_as_keywords():
    blocks = [{"channels": 3, "kernel": 5, "stride": 1, "pool": None}]
    # conv 2 -> 3 channels, kernel 5: 2 x 3 x 5 + 3 = 33; prelu: 3 slopes; flatten 3 x 10 = 30 -> 4 classes: 124
    assert cost.count_parameters(20, 4, [], {"name": "prelu"}, False, conv_layers=blocks, input_shape=[2, 10],
                                 global_pool=False) == 33 + 3 + 124
