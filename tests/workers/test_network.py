"""The network definition (trainrx.network) against PyTorch's own modules and hand computations:
CNN blocks, residual connections, maxout over channels, per-channel probes, the regression
objective, and the weights format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainrx.network import (FORMAT, Maxout, Network, WeightsFormatError, build_network, decode_metadata,
                             read_weights, weights_bytes)
from trainrx.network_config import ActivationConfig, ArchitectureConfig, ConvBlockConfig, NetworkConfig
from trainrx.torch_model import model_from_weights
from workers.engine import loop
from workers.engine.objective import Regression
from workers.engine.probes import activation_stats
from tests.workers.model_requests import arrays, config_for, data_for


def cnn(shape, blocks, *, activation="relu", head=(), batch_norm=False, residual=False, global_pool=True,
        outputs=3, pieces=None) -> Network:
    arch = ArchitectureConfig(type="cnn", hidden_layers=tuple(head), batch_norm=batch_norm, residual=residual,
                              conv_layers=tuple(ConvBlockConfig.from_request(b) for b in blocks),
                              global_pool=global_pool)
    config = NetworkConfig(arch, ActivationConfig(activation, pieces=pieces), 0.0, math.prod(shape), outputs,
                           tuple(shape))
    return build_network(config).eval()


def test_a_1d_cnn_is_pytorch_conv_pool_and_global_average_by_hand():
    torch.manual_seed(0)
    net = cnn((2, 12), [{"channels": 4, "kernel": 5, "pool": "max"}, {"channels": 6, "stride": 2, "pool": "avg"}],
              head=(5,))
    x = torch.randn(7, 24)
    c1, c2 = net.conv[0].conv, net.conv[1].conv
    h = F.max_pool1d(F.relu(F.conv1d(x.view(7, 2, 12), c1.weight, c1.bias, padding=2)), 2, 2)
    h = F.avg_pool1d(F.relu(F.conv1d(h, c2.weight, c2.bias, stride=2, padding=1)), 2, 2)
    assert h.shape == (7, 6, 1) and net.conv[1].out_shape == (6, 1)
    h = F.relu(net.hidden[0].linear(h.mean(dim=2)))
    torch.testing.assert_close(net(x), net.output(h), rtol=0, atol=0)


def test_a_2d_cnn_flattens_without_global_pool_and_adds_the_input_where_shapes_match():
    torch.manual_seed(1)
    net = cnn((1, 6, 6), [3, 3, {"channels": 3, "pool": "max"}, 4], residual=True, global_pool=False)
    assert [b.residual for b in net.conv] == [False, True, False, False]  # 1->3 channels; pooled; 3->4 channels
    x = torch.randn(5, 36)
    blocks = net.conv
    h = F.relu(blocks[0].conv(x.view(5, 1, 6, 6)))
    h = h + F.relu(blocks[1].conv(h))
    h = F.max_pool2d(F.relu(blocks[2].conv(h)), 2, 2)
    h = F.relu(blocks[3].conv(h))
    assert net.output.in_features == 4 * 3 * 3
    torch.testing.assert_close(net(x), net.output(h.flatten(1)), rtol=0, atol=0)


def test_maxout_groups_consecutive_channels_and_prelu_has_a_slope_per_channel():
    x = torch.tensor([[[1.0, 2.0], [5.0, -1.0], [0.0, 3.0], [4.0, 4.5]]])  # [1, 4 channels, 2]
    assert torch.equal(Maxout(2)(x), torch.tensor([[[5.0, 2.0], [4.0, 4.5]]]))
    net = cnn((1, 8), [{"channels": 3}], activation="maxout", pieces=2)
    assert net.conv[0].conv.out_channels == 6 and net(torch.randn(2, 8)).shape == (2, 3)
    prelu = cnn((1, 8), [{"channels": 5}], activation="prelu", batch_norm=True)
    assert prelu.conv[0].act.weight.shape == (5,) and isinstance(prelu.conv[0].norm, torch.nn.BatchNorm1d)


def test_the_dead_fraction_of_a_conv_layer_counts_channels_never_positive_anywhere():
    torch.manual_seed(2)
    net = cnn((1, 10), [{"channels": 4}, {"channels": 4}], head=(6,))
    with torch.no_grad():
        net.conv[0].conv.bias[1] = -100.0  # channel 2 of conv1 is never positive
        net.conv[0].conv.weight[3].zero_()
        net.conv[0].conv.bias[3] = 0.0  # channel 4 is exactly zero everywhere: never positive either
    x = torch.randn(64, 10)
    stats = activation_stats(net, x, "relu")
    assert stats["dead_fraction"]["conv1"] == 0.5
    assert list(stats["activation_variance"]) == ["conv1", "conv2", "hidden1"]
    pre = net.conv[1].conv(F.relu(net.conv[0].conv(x.view(64, 1, 10))))
    by_hand = (pre <= 0).all(dim=2).all(dim=0).float().mean().item()
    assert stats["dead_fraction"]["conv2"] == by_hand
    assert stats["activation_variance"]["conv2"] == pytest.approx(F.relu(pre).var(unbiased=False).item())


def test_a_cnn_run_reports_every_layer_by_name_input_to_output():
    config = config_for({"dataset": {"name": "digits", "train_samples": 120},
                         "architecture": {"type": "cnn", "conv_layers": [4, {"channels": 4, "pool": "max"}],
                                          "hidden_layers": [8], "batch_norm": True},
                         "activation": "tanh", "epochs": 2, "batch_size": 32})
    result = loop.run(config, data_for(config))
    row = result.rows[-1]
    assert list(row["grad_norm"]) == ["conv1", "conv2", "hidden1", "output"]
    assert list(row["weight_norm"]) == list(row["update_ratio"]) == ["conv1", "conv2", "hidden1", "output"]
    assert list(row["saturated_fraction"]) == list(row["activation_variance"]) == ["conv1", "conv2", "hidden1"]
    assert list(result.probes.initial["activation_variance"]) == ["conv1", "conv2", "hidden1"]
    assert 0 <= row["train_accuracy"] <= 1 and "train_r2" not in row


def test_regression_metrics_match_a_hand_computation_in_original_units():
    torch.manual_seed(3)
    std = 2.5
    outputs, targets = torch.randn(50, 1), torch.randn(50)
    objective = Regression("mse", std)
    totals = objective.zeros(torch.device("cpu"))
    objective.accumulate(totals, outputs[:20], targets[:20])
    objective.accumulate(totals, outputs[20:], targets[20:])
    metrics = objective.metrics(totals, 50)
    p, y = outputs.squeeze(1).double() * std + 10, targets.double() * std + 10  # any mean: R² is shift-free
    r2 = 1 - ((p - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert metrics["r2"] == pytest.approx(r2.item(), rel=1e-9)
    assert metrics["mae"] == pytest.approx((p - y).abs().mean().item(), rel=1e-9)
    assert objective.loss(outputs, targets).item() == pytest.approx(F.mse_loss(outputs.squeeze(1), targets).item())
    huber = Regression("huber", std).loss(outputs * 3, targets)
    assert huber.item() == pytest.approx(F.huber_loss(outputs.squeeze(1) * 3, targets).item())


def test_a_regression_run_standardises_targets_on_the_training_split_and_splits_at_random():
    config = config_for({"dataset": {"name": "diabetes"}, "architecture": {"hidden_layers": [16]},
                         "optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 3,
                         "patience": 2, "early_stopping": {"monitor": "val_mae"}})
    data = data_for(config)
    y = arrays("diabetes").y.astype(np.float64)
    target = data.info["preprocessing"]["target"]
    assert data.y_train.dtype == torch.float32 and data.outputs == 1 and data.classes == 0
    assert abs(data.y_train.double().mean().item()) < 1e-6 and data.y_train.double().std(unbiased=False).item() == \
        pytest.approx(1.0, rel=1e-5)
    assert target["mean"] != pytest.approx(y.mean(), rel=1e-9)  # fitted on the training split only
    assert data.info["validation_samples"] == round(0.2 * len(y)) and "train_class_counts" not in data.info
    result = loop.run(config, data)
    row = result.rows[-1]
    assert {"train_loss", "val_loss", "train_r2", "val_r2", "train_mae", "val_mae"} <= set(row)
    assert not any("accuracy" in key for key in row) and not any("accuracy" in key for key in result.summary)
    assert result.summary["val_mae"] > 1  # in the target's units (diabetes progression, tens)
    assert result.model.output.out_features == 1


def test_weights_v2_round_trip_and_an_unknown_format_is_refused_clearly():
    config = config_for({"dataset": {"name": "digits", "train_samples": 60},
                         "architecture": {"type": "cnn", "conv_layers": [2], "hidden_layers": []}, "epochs": 1})
    data = data_for(config)
    network = loop.run(config, data).model
    blob = weights_bytes(network, config.to_dict(), data.info["preprocessing"], data.features, data.classes,
                         config.task, config.dataset.input_shape)
    state, meta = read_weights(blob)
    assert meta["format"] == FORMAT == "trainrx-net-v2" and meta["input_shape"] == [1, 8, 8]
    assert meta["architecture"]["type"] == "cnn" and meta["task"] == "classification"
    model = model_from_weights(blob)
    assert model.input_shape == [1, 8, 8] and set(state) == set(model.network.state_dict())
    with pytest.raises(WeightsFormatError, match="upgrade trainrx"):
        decode_metadata({"format": "trainrx-net-v9"})
    assert issubclass(WeightsFormatError, ValueError)


def test_a_v1_weights_file_still_loads():
    config = config_for({"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1})
    network = loop.run(config, data_for(config)).model
    from safetensors.torch import save

    request = {k: v for k, v in config.to_dict().items() if k != "loss"}
    request["dataset"] = {k: v for k, v in request["dataset"].items() if k not in ("task", "input_shape")}
    request["architecture"] = {k: v for k, v in request["architecture"].items() if k != "type"}
    v1 = save({k: v.contiguous() for k, v in network.state_dict().items()},
              metadata={"format": "trainrx-mlp-v1", "spec": __import__("json").dumps(request),
                        "preprocessing": '{"method": "none"}', "features": "2", "classes": "2"})
    model = model_from_weights(v1)
    x = torch.randn(9, 2)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), network.eval()(x), rtol=0, atol=0)
