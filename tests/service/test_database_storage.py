"""The API with TRAINRX_STORAGE=database: uploads go into the database, a job's files are
served from it (as a worker on another host would have written them), and deletes take
them out. On SQLite here, on PostgreSQL in CI's second pass; tests/e2e/test_multihost.py
runs real workers on hosts that share no disk."""

from __future__ import annotations

import os
from dataclasses import replace

from core.artifacts import MODEL_FILE, MODEL_KEY, ONNX_ERROR_KEY, WEIGHTS_FILE, WEIGHTS_KEY
from core.spec import normalise
from tests.conftest import OWNER, authed_client
from tests.sample_uploads import as_npz, blobs, upload


def test_files_in_the_database_are_served_and_deleted_through_the_api(settings):
    from service import create_app

    app = create_app({"SETTINGS": replace(settings, storage="database"), "TESTING": True})
    client, p = authed_client(app), app.extensions["trainrx"]

    resp = upload(client, as_npz(*blobs()))
    assert resp.status_code == 201, resp.get_json()
    dataset_id = resp.get_json()["id"]
    assert p.storage.exists(f"datasets/{dataset_id}/x.npy") and not (settings.uploads_dir / dataset_id).exists()

    # A finished job whose worker wrote its files into the database (several chunks' worth).
    request = normalise({"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1},
                        limits=settings.limits, resolver=None)
    job, _ = p.store.create(request, "cpu", owner=OWNER)
    run = p.store.start(job["id"], "elsewhere@host")["run"]
    weights, model = os.urandom(2_500_000), os.urandom(1000)
    p.artifacts.write_bytes(job["id"], WEIGHTS_FILE, weights)
    p.artifacts.write_bytes(job["id"], MODEL_FILE, model)
    p.store.finish(job["id"], run, "succeeded", artifacts={
        WEIGHTS_KEY: WEIGHTS_FILE, MODEL_KEY: {"file": MODEL_FILE, "format": "torch.export", "torch_version": "2.13.0",
                                               "bytes": len(model)},
        ONNX_ERROR_KEY: "RuntimeError: no ONNX for this test"})
    assert not (settings.artifacts_dir / job["id"]).exists()

    got = client.get(f"/v1/jobs/{job['id']}/weights")
    assert got.status_code == 200 and got.data == weights
    assert client.get(f"/v1/jobs/{job['id']}").get_json()["model"]["status"] == "ready"  # no model_status: before
    got = client.get(f"/v1/jobs/{job['id']}/model")
    assert got.status_code == 200 and got.data == model and got.headers["X-Torch-Version"] == "2.13.0"
    onnx = client.get(f"/v1/jobs/{job['id']}/model.onnx")  # a finished job of before model.status: ready
    assert onnx.status_code == 410 and "no ONNX for this test" in onnx.get_json()["message"]

    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not p.storage.exists(f"artifacts/{job['id']}/{WEIGHTS_FILE}")
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert not p.storage.exists(f"datasets/{dataset_id}/x.npy")
