"""The SDK and CLI on the data-and-models endpoints: uploads, a job on an upload
with fitted scaling, the exported model, logs, deletion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.clients.conftest import run_cli
from tests.sample_uploads import as_csv, as_npz, blobs
from trainrx import Dataset, NotFoundError, UnprocessableEntityError

X, Y = blobs(rows_per_class=40)


def test_upload_train_with_scaling_load_model_logs_and_delete(sdk, tmp_path):
    path = tmp_path / "blobs.csv"
    path.write_bytes(as_csv(X, Y))
    dataset = sdk.datasets.upload(path, name="sdk blobs")
    assert isinstance(dataset, Dataset) and dataset.id and dataset.name == "sdk blobs"
    assert (dataset.rows, dataset.features, dataset.classes) == (120, 4, 3) and dataset.format == "csv"
    assert sdk.datasets.get(dataset.id) == dataset

    job = sdk.jobs.create({"dataset": {"id": dataset.id, "scale": "standard"},
                           "architecture": {"hidden_layers": [16]}, "epochs": 5})
    job = sdk.jobs.wait(job.id, timeout=300)
    assert job.status == "succeeded" and job.data["preprocessing"]["method"] == "standard"

    model = sdk.jobs.load_model(job.id)  # raw rows in, the fitted scaling applied first
    program = torch.export.load(str(sdk.jobs.download_model(job.id, tmp_path / "m.pt2"))).module()
    raw = torch.as_tensor(X[:50])
    with torch.inference_mode():
        torch.testing.assert_close(model(raw), program(raw), rtol=0, atol=1e-5)

    log = sdk.jobs.logs(job.id)
    assert "epoch 5:" in log and "job succeeded" in log

    with pytest.raises(NotFoundError):
        sdk.jobs.delete("f" * 32)
    sdk.jobs.delete(job.id)
    with pytest.raises(NotFoundError):
        sdk.jobs.get(job.id)
    sdk.datasets.delete(dataset.id)
    with pytest.raises(NotFoundError):
        sdk.datasets.get(dataset.id)


def test_a_bad_upload_is_a_422_naming_the_problem(sdk, tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(as_npz(X, np.zeros_like(Y)))  # a single class
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.datasets.upload(path)
    assert caught.value.status_code == 422 and "class" in caught.value.message


def test_cli_upload_download_model_and_logs(sdk, api_url, tmp_path):
    path = tmp_path / "blobs.npz"
    path.write_bytes(as_npz(X, Y))
    out = run_cli("datasets", "upload", str(path), "--name", "cli blobs", url=api_url)
    assert out.returncode == 0, out.stderr
    dataset_id = out.stdout.split()[0]
    assert sdk.datasets.get(dataset_id).name == "cli blobs"
    job = sdk.jobs.wait(sdk.jobs.create({"dataset": {"id": dataset_id, "scale": "minmax"},
                                         "architecture": {"hidden_layers": [8]}, "epochs": 2}).id, timeout=300)
    target = tmp_path / "exported.pt2"
    assert run_cli("download", job.id, "--model", "-o", str(target), url=api_url).returncode == 0
    assert target.stat().st_size > 1000
    logs = run_cli("logs", job.id, url=api_url)
    assert logs.returncode == 0 and "epoch 2:" in logs.stdout


def test_a_regression_upload_with_a_shape_from_the_sdk_and_the_cli(sdk, api_url, tmp_path):
    x = np.random.default_rng(3).normal(size=(30, 8)).astype(np.float32)
    y = x.sum(axis=1) * 2.5
    path = tmp_path / "signal.npz"
    path.write_bytes(as_npz(x, y))
    dataset = sdk.datasets.upload(path, task="regression", input_shape=(2, 4))
    assert (dataset.task, dataset.input_shape, dataset.classes) == ("regression", [2, 4], 0)
    assert dataset.target["max"] == pytest.approx(float(y.max()), rel=1e-6)
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.datasets.upload(path, task="regression", input_shape=[3, 3])
    assert "input_shape" in caught.value.errors
    out = run_cli("datasets", "upload", str(path), "--task", "regression", "--input-shape", "1,2,4", "--json",
                  url=api_url)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert (shown["task"], shown["input_shape"]) == ("regression", [1, 2, 4])
    bad = run_cli("datasets", "upload", str(path), "--input-shape", "one,two", url=api_url)
    assert bad.returncode != 0 and "--input-shape" in bad.stderr
    for dataset_id in (dataset.id, shown["id"]):
        sdk.datasets.delete(dataset_id)
