"""The typed job config: read once from the normalised request, frozen, and a request queued before
CNNs and regression existed reads as the multilayer perceptron on a classification task it was."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.settings import Limits
from core.spec import normalise
from tests.workers.golden import FIXTURE
from workers.engine.config import ConvBlockConfig, JobConfig


def test_every_golden_request_reads_with_the_defaults_of_its_time():
    for case in json.loads(FIXTURE.read_text()).values():
        request = case["request"]
        config = JobConfig.from_request(request)
        assert config.architecture.type == "mlp" and not config.architecture.is_cnn
        assert config.architecture.hidden_layers == tuple(request["architecture"]["hidden_layers"])
        assert config.dataset.task == "classification" and config.dataset.input_shape is None
        assert config.loss == "cross_entropy" and not config.is_regression
        assert config.to_dict() == request and config.to_dict() is not config.to_dict()


def test_attributes_mirror_the_request():
    request = normalise({"dataset": {"name": "digits", "train_samples": 50},
                         "architecture": {"hidden_layers": [8], "batch_norm": True},
                         "activation": {"name": "leaky_relu", "negative_slope": 0.2},
                         "optimizer": {"name": "adamw", "learning_rate": 0.01}, "regularization": {"l2": 0.1},
                         "patience": 3, "targets": {"val_accuracy": 0.9}}, limits=Limits(), resolver=None)
    config = JobConfig.from_request(request)
    assert config.activation.negative_slope == 0.2 and config.regularization.l2 == 0.1
    assert config.optimizer.betas == (0.9, 0.999) and config.optimizer.weight_decay == 0.01
    assert config.early_stopping.monitor == "val_loss" and config.patience == 3
    assert config.targets.val_accuracy == 0.9 and config.targets.train_accuracy is None
    assert config.dataset.train_samples == 50 and config.dataset.scale == "none"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    no_stopping = JobConfig.from_request({**request, "patience": None, "targets": None})
    assert no_stopping.early_stopping is None and not no_stopping.targets.any


def test_new_keys_read_when_present():
    request = normalise({"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8]}}, limits=Limits(),
                        resolver=None)
    request = {**request, "loss": "huber",
               "dataset": {**request["dataset"], "task": "regression", "input_shape": [1, 2]},
               "architecture": {**request["architecture"], "type": "cnn", "hidden_layers": [],
                                "conv_layers": [4, {"channels": 6, "kernel": 5, "stride": 1, "pool": "max"}],
                                "global_pool": False}}
    config = JobConfig.from_request(request)
    assert config.is_regression and config.loss == "huber" and config.dataset.input_shape == (1, 2)
    assert config.architecture.conv_layers == (ConvBlockConfig(4), ConvBlockConfig(6, 5, 1, "max"))
    assert not config.architecture.global_pool and config.architecture.hidden_layers == ()
    regression = JobConfig.from_request({**request, "loss": None})
    assert regression.loss == "mse"
    assert config.network(2, 1).input_shape == (1, 2) and config.network(2, 1, (2, 1)).input_shape == (2, 1)
