"""`jobs.load_model` rebuilds the network with the SDK's own torch code; its
predictions equal those of the server-side model (workers/engine) on real inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.datasets import load_builtin
from workers.engine.model import build_model
from workers.engine.weights import read_weights

CASES = {
    "relu-batchnorm-residual-dropout": {"dataset": {"name": "digits"}, "activation": "relu",
                                        "architecture": {"hidden_layers": [32, 32], "batch_norm": True,
                                                         "residual": True},
                                        "regularization": {"dropout": 0.2}},
    "maxout": {"dataset": {"name": "spirals"}, "activation": {"name": "maxout", "pieces": 3},
               "architecture": {"hidden_layers": [16, 8]}},
    "prelu-xavier": {"dataset": {"name": "mnist1d"}, "activation": "prelu",
                     "architecture": {"hidden_layers": [24], "init": "xavier_uniform"}},
    "leaky-relu": {"dataset": {"name": "moons"}, "activation": {"name": "leaky_relu",
                                                                              "negative_slope": 0.1},
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
    reference = build_model(meta["spec"], meta["features"], meta["classes"])
    reference.load_state_dict(state)
    reference.eval()

    x = torch.as_tensor(np.ascontiguousarray(load_builtin(job.request["dataset"]["name"]).x[:64]))
    with torch.inference_mode():
        ours, theirs = model(x), reference(x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert torch.equal(model.predict(x), theirs.argmax(dim=-1))
