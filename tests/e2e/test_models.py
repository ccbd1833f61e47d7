"""Models out: the worker's exported .pt2 and ONNX give the trained network's
predictions from raw inputs, in a process that knows nothing of this project."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from core.datasets import BUILTIN_DATASETS, load_builtin
from tests.conftest import run_job, wait_for_model
from tests.e2e.test_training import rebuild
from tests.sample_uploads import as_npz, blobs, uploaded
from workers.engine.data import stratified_split
from trainrx.network import InputScaling

ROOT = Path(__file__).resolve().parents[2]

# Runs with `python -I` from an empty directory: no PYTHONPATH, no repo on sys.path.
FRESH_PROCESS = r"""
import json, sys
import numpy as np, torch
program = torch.export.load(sys.argv[1])
logits = program.module()(torch.from_numpy(np.load(sys.argv[2])))
np.save(sys.argv[3], logits.detach().numpy())
root, prefix = sys.argv[4], sys.prefix
ours = sorted(name for name, module in list(sys.modules.items())
              if name.split(".")[0] in ("core", "service", "workers", "tests")
              or ((getattr(module, "__file__", None) or "").startswith(root)
                  and not (module.__file__ or "").startswith(prefix)))
print(json.dumps({"repo_modules": ours, "torch": torch.__version__}))
"""


def raw_validation(x: np.ndarray, y: np.ndarray, dataset_spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """The validation split as the user holds it: unscaled rows of the dataset's own format."""
    _, val = stratified_split(y, dataset_spec["validation_split"], dataset_spec["split_seed"])
    return x[val], y[val]


def worker_logits(weights: bytes, raw: np.ndarray) -> np.ndarray:
    """The trained network rebuilt from its weights, fed the inputs scaled as the worker scaled them."""
    model, _, meta = rebuild(weights)
    scaling = InputScaling.from_preprocessing(meta["preprocessing"], meta["features"])
    x = torch.from_numpy(raw)
    with torch.inference_mode():
        return model(scaling(x) if scaling is not None else x).numpy()


def test_the_pt2_runs_in_a_fresh_process_with_scaling_built_in(live, tmp_path):
    x, y = blobs(rows_per_class=80)
    dataset = uploaded(live, as_npz(x, y), "blobs.npz")
    job = run_job(live, {"dataset": {"id": dataset["id"], "scale": "standard"},
                         "architecture": {"hidden_layers": [16, 16], "batch_norm": True, "residual": True},
                         "activation": "prelu", "regularization": {"dropout": 0.2}, "epochs": 8})
    assert job["status"] == "succeeded", job
    job = wait_for_model(live, job["id"])
    assert job["model"]["status"] == "ready", job["model"]

    # The scaling was fitted on the training split only, and is recorded with the job and the weights.
    train, _ = stratified_split(y, 0.2, 0)
    preprocessing = job["data"]["preprocessing"]
    assert preprocessing["method"] == "standard" and "training split (192 samples)" == preprocessing["fitted_on"]
    np.testing.assert_allclose(preprocessing["mean"], x[train].astype(np.float64).mean(axis=0), rtol=1e-12)
    weights = live.get(job["links"]["weights"]).data
    assert rebuild(weights)[2]["preprocessing"] == preprocessing

    resp = live.get(job["links"]["model"])
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    assert resp.headers["X-Torch-Version"] == torch.__version__ == job["model"]["torch_version"]
    assert job["model"]["bytes"] == len(resp.data) and job["model"]["onnx"]["bytes"] > 0
    (tmp_path / "model.pt2").write_bytes(resp.data)
    x_val, y_val = raw_validation(x, y, job["request"]["dataset"])
    np.save(tmp_path / "x_val.npy", x_val)

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-I", "-c", FRESH_PROCESS, str(tmp_path / "model.pt2"),
                           str(tmp_path / "x_val.npy"), str(tmp_path / "logits.npy"), str(ROOT)],
                          cwd=empty, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["repo_modules"] == [] and report["torch"] == torch.__version__

    exported = np.load(tmp_path / "logits.npy")
    expected = worker_logits(weights, x_val)
    np.testing.assert_array_equal(exported.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=1e-5)
    # ... and those predictions are the ones the worker scored the returned epoch with.
    assert float((exported.argmax(axis=1) == y_val).mean()) == job["summary"]["val_accuracy"]


@pytest.mark.parametrize("dataset,architecture,activation", [
    ({"name": "digits"}, {"hidden_layers": [32, 32], "batch_norm": True, "residual": True}, {"name": "maxout"}),
    ({"name": "digits"}, {"hidden_layers": [32, 32], "batch_norm": True, "residual": True}, {"name": "prelu"}),
    ({"name": "mnist-5k", "train_samples": 500}, {"hidden_layers": [32]}, {"name": "gelu"}),
    ({"name": "moons"}, {"hidden_layers": [8, 8]}, {"name": "leaky_relu"}),
])
def test_pt2_and_onnx_agree_with_the_network_on_raw_inputs(live, dataset, architecture, activation):
    job = run_job(live, {"dataset": dataset, "architecture": architecture, "activation": activation,
                         "regularization": {"dropout": 0.1}, "epochs": 2})
    assert job["status"] == "succeeded", job
    job = wait_for_model(live, job["id"])
    assert set(job["model"]) == {"status", "format", "torch_version", "bytes", "onnx"}, job["model"]
    assert job["model"]["status"] == "ready"
    arrays, meta = load_builtin(dataset["name"]), BUILTIN_DATASETS[dataset["name"]]
    raw_x = arrays.x * np.float32(arrays.preprocessing.get("value", 1.0))  # back to the dataset's own units
    x_val, _ = raw_validation(raw_x.astype(np.float32), arrays.y, job["request"]["dataset"])
    expected = worker_logits(live.get(job["links"]["weights"]).data, x_val)

    program = torch.export.load(io.BytesIO(live.get(job["links"]["model"]).data))
    pt2 = program.module()(torch.from_numpy(x_val)).detach().numpy()
    single = program.module()(torch.from_numpy(x_val[:1])).detach().numpy()  # the batch dimension is dynamic

    resp = live.get(job["links"]["model_onnx"])
    assert resp.status_code == 200
    session = onnxruntime.InferenceSession(resp.data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    assert session.get_inputs()[0].shape == ["batch", meta.features]
    onnx_logits = session.run(["logits"], {"x": x_val})[0]

    for logits in (pt2, onnx_logits):
        assert logits.shape == (len(x_val), meta.classes)
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
        assert (logits.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.999
    np.testing.assert_allclose(single, expected[:1], rtol=1e-4, atol=1e-4)
