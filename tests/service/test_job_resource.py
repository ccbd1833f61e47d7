"""GET /v1/jobs/{id} builds the job resource without marshmallow (service/job_resource.py) and
reads one row with one query: it must show exactly what JobSchema documents and dumps."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import event

from service.job_resource import job_resource
from service.schemas import JobSchema
from tests.conftest import OTHER_OWNER, authed_client, submit
from tests.service.test_api import WAITING

ARTIFACTS = {"weights": "weights.safetensors",
             "model": {"file": "model.pt2", "format": "torch.export", "torch_version": "2.13.0+cpu", "bytes": 26439},
             "onnx": {"file": "model.onnx", "opset": 20, "bytes": 14026}}

# Each changes a real queued row into another kind of row the resource must show.
VARIANTS = {
    "queued": {},
    "running": {"status": "running", "progress_epoch": 3, "attempts": 1},
    "succeeded": {"status": "succeeded", "progress_epoch": 5, "data_info": {"name": "moons", "features": 2},
                  "summary": {"train_loss": 0.1, "val_loss": 0.2, "train_accuracy": 1, "val_accuracy": 0.9,
                              "best_epoch": 4, "epochs_run": 5, "stopped_early": False, "returned_epoch": 5,
                              "not_in_the_schema": 7},
                  "timings": {"queued_s": 0.01, "setup_s": 1, "train_s": 2.5, "total_s": None},
                  "artifacts": ARTIFACTS},
    "regression": {"status": "succeeded", "summary": {"train_r2": 0.9, "val_r2": 0.8, "train_mae": 1, "val_mae": 2.0,
                                                      "test_r2": None, "epochs_run": 2, "stopped_early": True}},
    "export failed": {"status": "succeeded", "artifacts": {"weights": "weights.safetensors", "model_error": "boom",
                                                           "onnx_error": "unsupported op"}},
    "failed": {"status": "failed", "error": {"type": "internal_error", "message": "it broke"}, "name": "named"},
    "resubmitted": {"parent_id": "0" * 32},
    "exporting": {"status": "succeeded", "artifacts": {"weights": "weights.safetensors"}, "model_status": "pending"},
    "export task failed": {"status": "succeeded", "artifacts": {"weights": "weights.safetensors"},
                           "model_status": "failed", "model_error": "the export timed out"},
    "remedied": {"status": "succeeded", "own_remedy_id": "1" * 32},
    "a sweep's child": {"sweep_id": "2" * 32, "sweep_index": 3},
}


@pytest.fixture(scope="module")
def queued_row(app):
    job = submit(authed_client(app), WAITING)
    return app.extensions["trainrx"].store.get(job["id"], owner=None)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_resource_is_what_job_schema_dumps(app, queued_row, variant):
    row = {**queued_row, **VARIANTS[variant]}
    if row["status"] != "queued":
        row["started_at"] = row["created_at"] + timedelta(seconds=1)
    if row["status"] in ("succeeded", "failed"):
        row["finished_at"] = row["created_at"] + timedelta(seconds=3)
    with app.test_request_context():
        dumped, built = JobSchema().dump(row), job_resource(row)
    assert built == dumped
    assert json.dumps(built) == json.dumps(dumped), "the same keys in the same order"


def test_get_shows_the_full_row_dumped_and_one_query_reads_it(app, client, queued_row):
    engine = app.extensions["trainrx"].store.engine
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    client.get("/v1/me")  # the token's look-up is cached from here on (service/auth.py)
    event.listen(engine, "before_cursor_execute", record)
    try:
        resp = client.get(f"/v1/jobs/{queued_row['id']}")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert resp.status_code == 200
    with app.test_request_context():
        assert resp.get_json() == JobSchema().dump(app.extensions["trainrx"].store.get(queued_row["id"], owner=None))
    reads = [s for s in statements if "FROM tokens" not in s]  # a look-up again if the cache expired meanwhile
    assert len(reads) == 1 and "FROM jobs" in reads[0], statements


def test_another_owners_job_is_still_a_404(app, queued_row):
    resp = authed_client(app, OTHER_OWNER).get(f"/v1/jobs/{queued_row['id']}")
    assert resp.status_code == 404 and resp.get_json()["code"] == 404
