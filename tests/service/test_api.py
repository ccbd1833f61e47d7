"""The HTTP contract: error shapes, idempotency, listing, cancel, OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from tests.conftest import submit

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1}
# Jobs that ask for CUDA wait on the gpu queue; no GPU worker runs in the tests, so they stay queued.
WAITING = {**SMALL, "device": "cuda"}


def assert_error_shape(resp, code: int) -> dict:
    assert resp.status_code == code, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["code"] == code and isinstance(body["status"], str) and body["message"]
    assert set(body) <= {"code", "status", "message", "errors"}
    return body


def test_invalid_request_names_every_bad_field_in_one_shape(client):
    resp = client.post("/v1/jobs", json={"dataset": {"name": "nope"}, "architecture": {"hidden_layers": [0]},
                                         "activation": "softmax", "optimizer": {"name": "adam", "momentum": 0.9},
                                         "unknown": True})
    body = assert_error_shape(resp, 422)
    assert body["message"] == "The request is invalid."
    errors = body["errors"]
    assert "Must be one of" in errors["dataset"]["name"][0]
    assert errors["architecture"]["hidden_layers"]
    assert "Must be one of" in errors["activation"]["name"][0]
    assert errors["optimizer"] == {"momentum": ["Unknown field."]}
    assert errors["unknown"] == ["Unknown field."]


@pytest.mark.parametrize("field,value", [("epochs", 0), ("batch_size", 0), ("seed", -1), ("device", "tpu"),
                                         ("patience", 0), ("max_runtime_s", 10**6), ("name", "n" * 101)])
def test_each_invalid_top_level_field_is_named(client, field, value):
    body = assert_error_shape(client.post("/v1/jobs", json={**SMALL, field: value}), 422)
    assert list(body["errors"]) == [field]


def test_missing_required_fields(client):
    body = assert_error_shape(client.post("/v1/jobs", json={}), 422)
    assert set(body["errors"]) == {"dataset", "architecture"}


@pytest.mark.parametrize("kwargs,code", [
    ({"data": "{not json", "content_type": "application/json"}, 400),
    ({"data": "epochs=3", "content_type": "application/x-www-form-urlencoded"}, 415),
    ({"json": [1, 2]}, 422),
])
def test_malformed_bodies(client, kwargs, code):
    assert_error_shape(client.post("/v1/jobs", **kwargs), code)


def test_unknown_ids_routes_and_methods(client):
    assert "No job" in assert_error_shape(client.get("/v1/jobs/000"), 404)["message"]
    assert_error_shape(client.get("/v1/jobs/" + "a" * 32), 404)
    assert_error_shape(client.get("/v1/jobs/%00"), 404)
    assert_error_shape(client.get("/v1/nothing"), 404)
    assert_error_shape(client.delete("/v1/datasets"), 405)
    for sub in ("curves", "diagnosis", "weights", "cancel"):
        method = client.post if sub == "cancel" else client.get
        assert_error_shape(method(f"/v1/jobs/{'b' * 32}/{sub}"), 404)


def test_a_valid_post_returns_202_location_and_the_normalised_request(client):
    resp = client.post("/v1/jobs", json={**WAITING, "name": "first"})
    assert resp.status_code == 202
    job = resp.get_json()
    assert resp.headers["Location"] == f"/v1/jobs/{job['id']}" == job["links"]["self"]
    assert job["status"] == "queued" and job["queue"] == "gpu" and job["name"] == "first"
    assert job["request"]["activation"] == {"name": "relu"}
    assert job["progress"] == {"epoch": 0, "epochs": 1} and job["summary"] is None
    assert job["created_at"].endswith("+00:00")
    assert client.get(job["links"]["self"]).get_json()["id"] == job["id"]


def test_auto_and_cpu_jobs_go_to_the_default_queue(client):
    assert submit(client, {**SMALL, "device": "cpu", "epochs": 1})["queue"] == "cpu"


def test_idempotency_key_makes_the_post_safe_to_retry(client):
    key = {"Idempotency-Key": "retry-me-1"}
    first = client.post("/v1/jobs", json=WAITING, headers=key)
    again = client.post("/v1/jobs", json=WAITING, headers=key)
    assert first.status_code == 202 and again.status_code == 200
    assert first.get_json()["id"] == again.get_json()["id"]
    # The same request in another spelling is the same request.
    same = client.post("/v1/jobs", json={**WAITING, "activation": {"name": "relu"}}, headers=key)
    assert same.status_code == 200
    other = client.post("/v1/jobs", json={**WAITING, "epochs": 2}, headers=key)
    assert "Idempotency-Key" in assert_error_shape(other, 409)["message"]


def test_cancel_a_queued_job_at_once_and_refuse_a_second_cancel(client):
    job = submit(client, WAITING)
    resp = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert resp.status_code == 202
    cancelled = resp.get_json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    assert "finished" in assert_error_shape(client.post(f"/v1/jobs/{job['id']}/cancel"), 409)["message"]


def test_results_of_a_job_that_has_not_run(client):
    job = submit(client, WAITING)
    assert_error_shape(client.get(f"/v1/jobs/{job['id']}/weights"), 409)
    curves = client.get(f"/v1/jobs/{job['id']}/curves").get_json()
    assert curves["epoch"] == [] and curves["grad_norm"] == {}
    diagnosis = client.get(f"/v1/jobs/{job['id']}/diagnosis").get_json()
    assert diagnosis["final"] is False and diagnosis["verdict"] is None


def test_listing_is_newest_first_with_cursor_pages_and_a_status_filter(client):
    ids = [submit(client, {**WAITING, "name": f"page-{i}"})["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        resp = client.get("/v1/jobs", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})})
        page = resp.get_json()
        assert len(page["items"]) <= 2
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i for i in seen if i in ids] == list(reversed(ids))
    assert len(seen) == len(set(seen))
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    cancelled = client.get("/v1/jobs", query_string={"status": "cancelled", "limit": 100}).get_json()["items"]
    assert ids[0] in [j["id"] for j in cancelled] and all(j["status"] == "cancelled" for j in cancelled)
    assert_error_shape(client.get("/v1/jobs", query_string={"limit": 101}), 422)
    assert_error_shape(client.get("/v1/jobs", query_string={"status": "done"}), 422)
    assert "cursor" in assert_error_shape(client.get("/v1/jobs", query_string={"cursor": "!!"}), 422)["errors"]


def test_datasets_are_listed_with_shapes_and_class_counts(client):
    items = {d["name"]: d for d in client.get("/v1/datasets").get_json()["items"]}
    assert set(items) == {"digits", "mnist1d", "moons", "spirals", "mnist-5k", "diabetes", "friedman1"}
    assert {name: (d["task"], d["input_shape"]) for name, d in items.items()} == {
        "digits": ("classification", [1, 8, 8]), "mnist1d": ("classification", [1, 40]),
        "mnist-5k": ("classification", [1, 28, 28]), "moons": ("classification", None),
        "spirals": ("classification", None), "diabetes": ("regression", None), "friedman1": ("regression", None)}
    diabetes = items["diabetes"]
    assert (diabetes["samples"], diabetes["features"], diabetes["classes"], diabetes["class_counts"]) == \
        (442, 10, 0, {})
    assert diabetes["target"]["min"] == 25.0 and diabetes["target"]["max"] == 346.0
    assert "target" not in items["digits"]
    assert items["mnist-5k"]["features"] == 784 and items["mnist-5k"]["samples"] == 5000
    assert items["mnist-5k"]["preprocessing"] == {"method": "divide", "value": 255.0,
                                                  "note": "pixel intensities 0..255 divided by 255"}
    assert items["digits"]["features"] == 64 and items["digits"]["samples"] == 1797
    assert sum(items["digits"]["class_counts"].values()) == 1797
    assert items["mnist1d"]["test_samples"] == 1000 and items["moons"]["test_samples"] == 0


def test_regression_summaries_and_curves_keep_their_metrics():
    """The job resource and the curves are dumped by their schemas, which drop keys they do not declare."""
    from service.schemas import CurvesSchema, SummarySchema

    summary = {"train_loss": 0.1, "val_loss": 0.2, "best_epoch": 3, "epochs_run": 3, "stopped_early": False,
               "returned_epoch": 3, "train_r2": 0.9, "val_r2": 0.8, "train_mae": 1.5, "val_mae": 2.0}
    assert SummarySchema().dump(summary) == summary
    curves = {"epoch": [1], "train_loss": [0.5], "val_loss": [0.6], "train_r2": [0.4], "val_r2": [0.3],
              "train_mae": [9.0], "val_mae": [9.5]}
    assert CurvesSchema().dump(curves) == curves


def test_health_counts_live_workers(client, worker):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["workers"] >= 1 and body["version"]


def test_health_is_503_when_the_broker_is_gone(settings, tmp_path):
    from dataclasses import replace

    from service import create_app

    broken = replace(settings, redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path)
    body = assert_error_shape(create_app({"SETTINGS": broken}).test_client().get("/healthz"), 503)
    assert "Redis" in body["message"]


def test_openapi_yaml_equals_what_the_app_serves(client):
    served = client.get("/openapi.json").get_json()
    on_disk = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    assert on_disk == served, "openapi.yaml is stale: run `make openapi`"
    validate(served)
    request_schema = served["components"]["schemas"]["JobRequest"]
    assert {"oneOf"} <= set(request_schema["properties"]["activation"])


def test_a_job_over_the_cost_limits_is_refused_with_the_estimate(client):
    over = {"dataset": {"name": "mnist-5k"}, "architecture": {"hidden_layers": [2048, 2048]}, "epochs": 10_000}
    body = assert_error_shape(client.post("/v1/jobs", json=over), 422)
    assert list(body["errors"]) == ["cost"]
    assert "TRAINRX_MAX_WORK" in body["errors"]["cost"]["work"][0]


def test_a_component_named_by_an_object_is_a_422_not_a_500(client):
    body = assert_error_shape(client.post("/v1/jobs", json={**SMALL, "optimizer": {"name": {}}}), 422)
    assert "Must be one of" in body["errors"]["optimizer"]["name"][0]
