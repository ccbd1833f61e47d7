"""GET /v1/jobs/{id}/curves on long runs: only what is new (after_epoch), or thinned (max_points)."""

from __future__ import annotations

from core.spec import normalise
from tests.conftest import OWNER
from tests.service.test_api import WAITING, assert_error_shape


def recorded_job(app, epochs: int) -> str:
    """A job with ``epochs`` recorded epochs, each with two sampled steps (written as a worker does)."""
    store = app.extensions["trainrx"].store
    request = normalise({**WAITING, "epochs": epochs}, limits=app.extensions["trainrx"].settings.limits,
                        resolver=None)
    job, _ = store.create(request, "gpu", owner=OWNER)
    run = store.start(job["id"], "test")["run"]
    for e in range(1, epochs + 1):
        steps = {"step": [2 * e - 1, 2 * e], "epoch": [e, e], "loss": [1.0 / e, 0.9 / e], "grad_norm": [1.0, 1.0]}
        store.record_epoch(job["id"], run, {"epoch": e, "train_loss": 1.0 / e, "grad_norm": {"fc1": 0.1}}, None,
                           steps=steps)
    return job["id"]


def test_curves_page_after_an_epoch_and_thin_to_a_number_of_points(app, client):
    job_id = recorded_job(app, 30)
    full = client.get(f"/v1/jobs/{job_id}/curves").get_json()
    assert full["epoch"] == list(range(1, 31)) and full["steps"]["step"] == list(range(1, 61))
    assert full["grad_norm"]["fc1"] == [0.1] * 30
    newer = client.get(f"/v1/jobs/{job_id}/curves?after_epoch=27").get_json()
    assert newer["epoch"] == [28, 29, 30] and newer["steps"]["epoch"] == [28, 28, 29, 29, 30, 30]
    thin = client.get(f"/v1/jobs/{job_id}/curves?max_points=4").get_json()
    assert thin["epoch"][0] == 1 and thin["epoch"][-1] == 30 and len(thin["epoch"]) == 4
    assert thin["train_loss"] == [1.0 / e for e in thin["epoch"]]
    assert len(thin["steps"]["step"]) == 4 and thin["steps"]["step"][-1] == 60
    assert_error_shape(client.get(f"/v1/jobs/{job_id}/curves?max_points=1"), 422)
    assert_error_shape(client.get(f"/v1/jobs/{job_id}/curves?after_epoch=-1"), 422)
