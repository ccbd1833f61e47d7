"""`jobs.load_model` through the real service: it rebuilds the network from the weights the worker
wrote (the SDK's `trainrx.network`, the module the worker trained with), with the job's request and
scaling, and on raw rows predicts like the exported `.pt2` program. The parity of every
architecture with the engine, without services, is `tests/workers/test_parity.py`."""

from __future__ import annotations

import subprocess
import sys

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


def test_the_network_module_imports_no_server_code_and_its_config_no_torch():
    """The workers import trainrx.network; it must not import them back (or anything of the server)."""
    code = ("import sys, trainrx.network_config; no_torch = 'torch' not in sys.modules; "
            "import trainrx.network, trainrx.torch_model; "
            "print(no_torch, sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'flask_smorest', 'celery', "
            "'sqlalchemy', 'service', 'workers', 'core', 'tests'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "True []"


JOBS = {
    "cnn-digits": {"dataset": {"name": "digits", "train_samples": 300},
                   "architecture": {"type": "cnn", "conv_layers": [4, {"channels": 4, "pool": "max"}],
                                    "hidden_layers": [8], "batch_norm": True, "residual": True},
                   "activation": "prelu"},
    "regression-friedman1": {"dataset": {"name": "friedman1", "train_samples": 300},
                             "architecture": {"hidden_layers": [16]}, "loss": "huber"},
}


@pytest.mark.parametrize("name", list(JOBS))
def test_load_model_and_the_pt2_work_for_cnn_and_regression_jobs(sdk, tmp_path, name):
    job = sdk.jobs.wait(sdk.jobs.create({**JOBS[name], "epochs": 2}).id, timeout=300)
    assert job.status == "succeeded"
    model = sdk.jobs.load_model(job.id)
    program = torch.export.load(str(sdk.jobs.download_model(job.id, tmp_path / "model.pt2"))).module()
    if name.startswith("cnn"):
        raw = torch.as_tensor(load_digits().data[:64], dtype=torch.float32)  # pixel intensities 0..16
        assert model.input_shape == [1, 8, 8] and len(model.network.conv) == 2
    else:
        from sklearn.datasets import make_friedman1

        raw = torch.as_tensor(make_friedman1(n_samples=64, noise=1.0, random_state=1)[0], dtype=torch.float32)
        assert model.task == "regression" and "target" in model.preprocessing
    with torch.inference_mode():
        ours, exported = model(raw), program(raw)
    torch.testing.assert_close(ours, exported, rtol=1e-5, atol=1e-4)
    if model.task == "regression":
        assert ours.shape == (64,) and torch.equal(model.predict(raw.numpy()), ours)
        assert 5 < ours.mean().item() < 25  # friedman1's targets are about 14 +- 5: original units
        # The summary and the curves speak in R² and MAE; the accuracy keys are absent.
        curves = sdk._http.get(f"/v1/jobs/{job.id}/curves").json()
        summary = sdk._http.get(f"/v1/jobs/{job.id}").json()["summary"]
        for metrics in (curves, summary):
            assert {"train_r2", "val_r2", "train_mae", "val_mae"} <= set(metrics), metrics.keys()
            assert not {"train_accuracy", "val_accuracy"} & set(metrics), metrics.keys()
        assert len(curves["val_r2"]) == 2
    else:
        assert ours.shape == (64, 10) and torch.equal(model.predict(raw.numpy()), ours.argmax(dim=-1))
