"""`jobs.load_model` rebuilds the network with the SDK's own torch code; its
predictions equal those of the server-side model (workers/engine) on real inputs,
and, on raw rows, those of the exported `.pt2` program."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from core.datasets import load_builtin
from trainrx.network import build_network, network_config, read_weights

CASES = {
    "relu-batchnorm-residual-dropout": {"dataset": {"name": "digits"}, "activation": "relu",
                                        "architecture": {"hidden_layers": [32, 32], "batch_norm": True,
                                                         "residual": True},
                                        "regularization": {"dropout": 0.2}},
    "maxout": {"dataset": {"name": "spirals"}, "activation": {"name": "maxout", "pieces": 3},
               "architecture": {"hidden_layers": [16, 8]}},
    "prelu-xavier": {"dataset": {"name": "mnist1d"}, "activation": "prelu",
                     "architecture": {"hidden_layers": [24], "init": "xavier_uniform"}},
    "leaky-relu": {"dataset": {"name": "moons"}, "activation": {"name": "leaky_relu", "negative_slope": 0.1},
                   "architecture": {"hidden_layers": [8, 8, 8]}},
}


@pytest.mark.parametrize("name", list(CASES))
def test_load_model_predicts_like_the_server_side_model(sdk, name):
    job = sdk.jobs.wait(sdk.jobs.create({**CASES[name], "epochs": 3}).id, timeout=300)
    assert job.status == "succeeded"
    model = sdk.jobs.load_model(job.id)
    assert not model.training and model.spec == job.request
    assert model.preprocessing == job.data["preprocessing"]

    state, meta = read_weights(sdk.jobs.weights_bytes(job.id))
    reference = build_network(network_config(meta))
    reference.load_state_dict(state)
    reference.eval()

    scaled = torch.as_tensor(np.ascontiguousarray(load_builtin(job.request["dataset"]["name"]).x[:64]))
    with torch.inference_mode():
        ours, theirs = model.network(scaled), reference(scaled)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert torch.equal(ours.argmax(dim=-1), theirs.argmax(dim=-1))


def test_load_model_takes_raw_rows_like_the_exported_program(sdk, tmp_path):
    """digits is scaled (pixels / 16) before training; the model scales raw pixels itself."""
    job = sdk.jobs.wait(sdk.jobs.create({**CASES["relu-batchnorm-residual-dropout"], "epochs": 3}).id, timeout=300)
    model = sdk.jobs.load_model(job.id)
    raw = torch.as_tensor(load_digits().data[:64], dtype=torch.float32)  # pixel intensities 0..16
    program = torch.export.load(str(sdk.jobs.download_model(job.id, tmp_path / "model.pt2"))).module()
    with torch.inference_mode():
        ours, exported = model(raw), program(raw)
        theirs = model.network(torch.as_tensor(load_builtin("digits").x[:64]))
    torch.testing.assert_close(ours, exported, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert torch.equal(model.predict(raw.numpy()), exported.argmax(dim=-1))
