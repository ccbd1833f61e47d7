"""The SDK and CLI on the data-and-models endpoints: uploads, a job on an upload
with fitted scaling, the exported model, logs, deletion."""

from __future__ import annotations

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
