"""A job's log, deleting a job, and jobs whose uploaded data went bad or away."""

from __future__ import annotations

import re
import socket

from core.uploads import UploadStore
from tests.conftest import run_job, submit, wait_for, wait_for_model
from tests.sample_uploads import as_csv, as_npz, blobs, uploaded
from tests.service.test_api import assert_error_shape

TINY = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8]}, "epochs": 2}
LONG = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64]}, "epochs": 10_000}
HOST = re.compile(rf"(?<![\w-]){re.escape(socket.gethostname())}(?![\w-])")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ")


def test_the_log_tells_the_jobs_story_as_text(live):
    job = wait_for_model(live, run_job(live, {**TINY, "name": "logged"})["id"])  # the exports log too
    resp = live.get(job["links"]["logs"])
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    lines = resp.get_data(as_text=True).splitlines()
    assert all(STAMP.match(line) for line in lines)
    text = "\n".join(lines)
    for expected in ("starts the job on cpu", "dataset moons: 800 training, 200 validation",
                     "epoch 1: train_loss=", "epoch 2: train_loss=", "exported the model with torch.export",
                     "exported the model to ONNX", "job succeeded"):
        assert expected in text, text
    assert "worker test-cpu starts the job" in text and not HOST.search(text)
    assert_error_shape(live.get(f"/v1/jobs/{'c' * 32}/logs"), 404)


def test_an_upload_job_logs_its_data_and_a_broken_one_logs_what_failed(live, settings):
    x, y = blobs(rows_per_class=20)
    dataset = uploaded(live, as_csv(x, y), "blobs.csv", name="blobs")
    good = run_job(live, {"dataset": {"id": dataset["id"], "scale": "minmax"},
                          "architecture": {"hidden_layers": [8]}, "epochs": 2})
    assert good["status"] == "succeeded"
    assert good["data"]["id"] == dataset["id"] and good["data"]["name"] == "blobs"
    assert good["data"]["preprocessing"]["method"] == "minmax"
    assert 0 <= good["data"]["input_stats"]["abs_max"] <= 1.0 + 1e-6  # min-max scaled on the training split
    assert f"dataset upload {dataset['id']} (blobs)" in live.get(good["links"]["logs"]).get_data(as_text=True)
    assert live.get(dataset["links"]["self"]).get_json()["last_used_at"] is not None

    # Damaged in storage before any job read it (a worker keeps an upload it read for its next jobs:
    # uploads never change once stored).
    damaged = uploaded(live, as_csv(x, y), "blobs.csv", name="damaged")
    (settings.uploads_dir / damaged["id"] / "x.npy").write_bytes(b"not an array")
    broken = run_job(live, {"dataset": {"id": damaged["id"]}, "architecture": {"hidden_layers": [8]}, "epochs": 1})
    assert broken["status"] == "failed" and broken["error"]["type"] == "internal_error"
    log = live.get(broken["links"]["logs"]).get_data(as_text=True)
    # The exception's type and message for the user; the traceback, the server's paths and
    # its host name only in the operator's log.
    assert "the job failed: ValueError: " in log and "Traceback" not in log
    assert "/" + settings.data_dir.parts[1] not in log and not HOST.search(log)
    assert broken["error"]["message"].startswith("ValueError: ") and "/" not in broken["error"]["message"]
    assert "has no exported model yet" in assert_error_shape(live.get(broken["links"]["model"]), 409)["message"]


def test_a_finished_job_is_deleted_with_everything_it_stored(live, settings):
    job = wait_for_model(live, run_job(live, TINY)["id"])
    store_dir = settings.artifacts_dir / job["id"]
    assert {p.name for p in store_dir.iterdir()} >= {"weights.safetensors", "model.pt2", "model.onnx"}
    resp = live.delete(job["links"]["self"])
    assert resp.status_code == 204 and resp.data == b""
    for link in ("self", "curves", "logs", "weights", "model"):
        assert_error_shape(live.get(job["links"][link]), 404)
    assert not store_dir.exists()
    assert live.application.extensions["trainrx"].store.logs(job["id"]) == []
    assert live.application.extensions["trainrx"].store.epochs(job["id"]) == []
    assert_error_shape(live.delete(job["links"]["self"]), 404)


def test_queued_and_running_jobs_are_not_deleted_and_a_vanished_upload_fails_cleanly(live, settings):
    queued = submit(live, {**TINY, "device": "cuda"})  # waits on the gpu queue
    assert "queued" in assert_error_shape(live.delete(queued["links"]["self"]), 409)["message"]
    live.post(f"/v1/jobs/{queued['id']}/cancel")
    assert live.delete(queued["links"]["self"]).status_code == 204

    x, y = blobs(rows_per_class=10)
    dataset = uploaded(live, as_npz(x, y))
    running = submit(live, LONG)
    wait_for(live, running["id"], 120, statuses=("running",))
    assert "running" in assert_error_shape(live.delete(running["links"]["self"]), 409)["message"]
    # Queued behind the running job; its upload vanishes before it starts (the race that
    # DELETE /v1/datasets/{id} cannot fully close).
    behind = submit(live, {"dataset": {"id": dataset["id"]}, "architecture": {"hidden_layers": [4]}, "epochs": 1})
    p = live.application.extensions["trainrx"]
    UploadStore(p.store.engine, p.storage).delete(dataset["id"], owner=None, force=True)
    live.post(f"/v1/jobs/{running['id']}/cancel")
    assert wait_for(live, running["id"], 60)["status"] == "cancelled"
    failed = wait_for(live, behind["id"], 120)
    assert failed["status"] == "failed" and failed["error"]["type"] == "dataset_unavailable"
    assert "no longer exists" in failed["error"]["message"]
