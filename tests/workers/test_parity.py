"""Parity, with no services: the network the engine trains and what a user gets back agree on the
same raw rows, for every architecture x activation x batch norm x residual.

"The engine's" side is the network as the training loop evaluates it: rows scaled by hand as the
job's preprocessing says, and for regression the prediction mapped back to the target's units by
hand. "The user's" side is the weights file (``weights_bytes``) loaded by the SDK's
``model_from_weights`` and fed raw rows; on a pairwise subset also the exported ``.pt2`` program
and the ONNX model under ONNX Runtime.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import onnxruntime
import pytest
import torch

from core.spec import ACTIVATIONS
from trainrx.network import build_network, weights_bytes
from trainrx.torch_model import model_from_weights
from workers.engine.config import JobConfig
from workers.engine.export import served_model, to_onnx, to_pt2

ARCHITECTURES = {  # name -> (architecture, input_shape)
    "mlp": ({"type": "mlp", "hidden_layers": [6, 6]}, None),
    "cnn1d": ({"type": "cnn", "hidden_layers": [5], "global_pool": True,
               "conv_layers": [{"channels": 3, "kernel": 3, "stride": 1, "pool": None},
                               {"channels": 3, "kernel": 3, "stride": 1, "pool": "max"}]}, [2, 6]),
    "cnn2d": ({"type": "cnn", "hidden_layers": [], "global_pool": False,
               "conv_layers": [{"channels": 2, "kernel": 3, "stride": 1, "pool": None},
                               {"channels": 2, "kernel": 3, "stride": 1, "pool": "avg"},
                               {"channels": 3, "kernel": 1, "stride": 1, "pool": None}]}, [1, 4, 4]),
}
ACTIVATION_SPECS = {name: {"name": name, **({"pieces": 2} if name == "maxout" else {}),
                           **({"negative_slope": 0.1} if name == "leaky_relu" else {})} for name in ACTIVATIONS}
COMBINATIONS = [(a, act, bn, res) for a, act, bn, res in
                itertools.product(ARCHITECTURES, ACTIVATIONS, (False, True), (False, True))]
ROWS = 9


def _task(architecture: str, activation: str, batch_norm: bool, residual: bool) -> str:
    """Both tasks for every architecture and activation, alternating with batch norm and residual."""
    index = list(ACTIVATIONS).index(activation) + batch_norm + residual + list(ARCHITECTURES).index(architecture)
    return "regression" if index % 2 else "classification"


def _job(architecture: str, activation: str, batch_norm: bool, residual: bool):
    """A trained-looking network (random weights, batch-norm statistics moved, PReLU slopes and norms
    perturbed), its request, its preprocessing and raw rows in the dataset's own units."""
    arch, shape = ARCHITECTURES[architecture]
    task = _task(architecture, activation, batch_norm, residual)
    features = int(np.prod(shape)) if shape else 5
    request = {"dataset": {"name": "parity", "validation_split": 0.2, "train_samples": None, "split_seed": 0,
                           "task": task, "input_shape": shape},
               "architecture": {**arch, "batch_norm": batch_norm, "residual": residual, "init": "default"},
               "activation": ACTIVATION_SPECS[activation], "optimizer": {"name": "sgd", "learning_rate": 0.1},
               "regularization": {"l1": 0.0, "l2": 0.0, "dropout": 0.25}, "patience": None, "epochs": 1,
               "batch_size": 4, "seed": 0, "device": "cpu", "diagnose": True, "targets": None,
               "max_runtime_s": 60, "loss": "mse" if task == "regression" else "cross_entropy"}
    config = JobConfig.from_request(request)
    generator = torch.Generator().manual_seed(COMBINATIONS.index((architecture, activation, batch_norm, residual)))
    torch.manual_seed(generator.initial_seed())
    outputs = 1 if task == "regression" else 3
    network = build_network(config.network(features, outputs))
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
        network.train()
        for _ in range(3):  # moves the running statistics of batch norm
            network(torch.randn(16, features, generator=generator) * 2 + 1)
    network.eval()
    mean = torch.randn(features, generator=generator, dtype=torch.float64) * 5
    std = torch.rand(features, generator=generator, dtype=torch.float64) * 3 + 0.5
    preprocessing = {"method": "standard", "mean": mean.tolist(), "std": std.tolist()}
    if task == "regression":
        preprocessing["target"] = {"mean": 150.0, "std": 40.0}
    raw = (torch.randn(ROWS, features, generator=generator, dtype=torch.float64) * std + mean).float()
    return config, network, preprocessing, raw, outputs


def engine_outputs(config: JobConfig, network, preprocessing: dict, raw: torch.Tensor) -> torch.Tensor:
    shift = torch.tensor(preprocessing["mean"], dtype=torch.float64).float()
    scale = torch.tensor(preprocessing["std"], dtype=torch.float64).float()
    with torch.inference_mode():
        out = network((raw - shift) / scale)
    if not config.is_regression:
        return out
    target = preprocessing["target"]
    return out.squeeze(1) * target["std"] + target["mean"]


@pytest.mark.parametrize("architecture,activation,batch_norm,residual", COMBINATIONS)
def test_load_model_predicts_like_the_engine_on_raw_rows(architecture, activation, batch_norm, residual):
    config, network, preprocessing, raw, outputs = _job(architecture, activation, batch_norm, residual)
    blob = weights_bytes(network, config.to_dict(), preprocessing, raw.shape[1], 0 if config.is_regression
                         else outputs, config.task, config.dataset.input_shape)
    model = model_from_weights(blob)
    assert not model.training and model.task == config.task and model.spec == config.to_dict()
    expected = engine_outputs(config, network, preprocessing, raw)
    with torch.inference_mode():
        got = model(raw)
    assert got.shape == ((ROWS,) if config.is_regression else (ROWS, outputs))
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5 if config.is_regression else 1e-6)
    predicted = model.predict(raw.numpy())
    assert torch.equal(predicted, got if config.is_regression else got.argmax(dim=1))


# Pairwise over architecture x task x batch norm x residual, with activations whose export differs
# (maxout: reshape + max; PReLU: a slope per channel; the rest elementwise).
EXPORTED = [("cnn2d", "maxout", True, True), ("cnn1d", "prelu", True, False), ("mlp", "gelu", False, True),
            ("cnn1d", "tanh", False, True)]


@pytest.mark.parametrize("architecture,activation,batch_norm,residual", EXPORTED)
def test_the_exported_programs_predict_like_the_engine(architecture, activation, batch_norm, residual):
    config, network, preprocessing, raw, _ = _job(architecture, activation, batch_norm, residual)
    expected = engine_outputs(config, network, preprocessing, raw)
    served = served_model(network, preprocessing, raw.shape[1], config.task)
    program = torch.export.load(io.BytesIO(to_pt2(served, raw.shape[1]))).module()
    with torch.inference_mode():
        torch.testing.assert_close(program(raw), expected, rtol=1e-5, atol=1e-5 * (40 if config.is_regression else 1))
    onnx_bytes, _ = to_onnx(served, raw.shape[1])
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (name,) = [o.name for o in session.get_outputs()]
    assert name == ("prediction" if config.is_regression else "logits")
    got = torch.from_numpy(session.run([name], {"x": raw.numpy()})[0])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * (40 if config.is_regression else 1))


def test_the_combinations_cover_both_tasks_for_every_architecture_and_activation():
    tasks = {(a, act): set() for a, act, _, _ in COMBINATIONS}
    for combination in COMBINATIONS:
        tasks[combination[:2]].add(_task(*combination))
    assert all(found == {"classification", "regression"} for found in tasks.values())
    assert {a for a, *_ in EXPORTED} == set(ARCHITECTURES)
    assert {_task(*c) for c in EXPORTED} == {"classification", "regression"}
