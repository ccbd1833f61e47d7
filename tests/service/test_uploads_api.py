"""POST/GET/DELETE /v1/datasets: uploads over HTTP, and requests that name them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tests.conftest import authed_client, submit
from tests.sample_uploads import as_csv, as_npz, blobs, upload, uploaded
from tests.service.test_api import assert_error_shape

X, Y = blobs(rows_per_class=20)


def test_an_upload_is_checked_stored_and_described(client, settings):
    resp = upload(client, as_csv(X, Y, names=["a", "b", "c", "d"]), "blobs.csv", name="my blobs")
    assert resp.status_code == 201, resp.get_json()
    dataset = resp.get_json()
    assert resp.headers["Location"] == f"/v1/datasets/{dataset['id']}" == dataset["links"]["self"]
    assert dataset["name"] == "my blobs" and dataset["format"] == "csv" and dataset["filename"] == "blobs.csv"
    assert (dataset["rows"], dataset["features"], dataset["classes"]) == (60, 4, 3)
    assert dataset["class_counts"] == {"0": 20, "1": 20, "2": 20}
    assert [r["name"] for r in dataset["feature_ranges"]] == ["a", "b", "c", "d"]
    assert dataset["feature_ranges"][0]["max"] > 1000 > dataset["feature_ranges"][2]["max"]
    assert dataset["size_bytes"] > 60 * 4 * 4 and dataset["upload_bytes"] > 0
    assert dataset["created_at"].endswith("+00:00") and dataset["last_used_at"] is None
    assert (dataset["task"], dataset["input_shape"], dataset["target"]) == ("classification", None, None)
    assert client.get(dataset["links"]["self"]).get_json() == dataset
    stored = settings.uploads_dir / dataset["id"]
    np.testing.assert_array_equal(np.load(stored / "x.npy", allow_pickle=False), X)


def test_an_npz_upload_is_named_after_its_file(client):
    dataset = uploaded(client, as_npz(X, Y), "blobs.npz")
    assert dataset["name"] == "blobs.npz" and dataset["format"] == "npz"
    assert dataset["feature_ranges"][0]["name"] is None


def test_bad_files_are_422_naming_the_problem(client):
    body = assert_error_shape(upload(client, as_npz(X, Y[:-1])), 422)
    assert body["message"] == body["errors"]["file"][0] == "X has 60 rows but y has 59 labels; they must match."
    body = assert_error_shape(upload(client, b"a,b\n1,2\n", "d.csv"), 422)
    assert "no 'label' column" in body["message"]


def test_form_mistakes_are_named(client):
    resp = client.post("/v1/datasets", data={"name": "x", "colour": "red"}, content_type="multipart/form-data")
    errors = assert_error_shape(resp, 422)["errors"]
    assert errors == {"file": ["Missing data for required field."], "colour": ["Unknown field."]}
    errors = assert_error_shape(upload(client, as_npz(X, Y), name="n" * 101), 422)["errors"]
    assert list(errors) == ["name"]
    assert "multipart/form-data" in assert_error_shape(client.post("/v1/datasets", json={"file": "x"}), 415)["message"]


def test_uploads_over_the_limit_are_413(settings, tmp_path):
    from service import create_app

    small = replace(settings, limits=replace(settings.limits, max_upload_bytes=4000))
    client = authed_client(create_app({"SETTINGS": small}))
    body = assert_error_shape(upload(client, as_csv(X, Y)), 413)
    assert "4,000-byte limit" in body["message"]
    bomb = as_npz(np.zeros((100, 40), np.float32), np.arange(100) % 2, compressed=True)
    assert len(bomb) < 4000
    assert "once decompressed" in assert_error_shape(upload(client, bomb), 413)["message"]


def test_unknown_and_builtin_ids(client):
    assert "No uploaded dataset" in assert_error_shape(client.get("/v1/datasets/" + "0" * 32), 404)["message"]
    assert "built-in datasets are listed" in assert_error_shape(client.get("/v1/datasets/digits"), 404)["message"]
    assert_error_shape(client.delete("/v1/datasets/" + "0" * 32), 404)


def test_a_request_names_an_upload_by_id_and_gets_its_defaults(client):
    dataset = uploaded(client, as_npz(X, Y))
    job = submit(client, {"dataset": {"id": dataset["id"]}, "architecture": {"hidden_layers": [4]},
                          "device": "cuda"})
    assert job["request"]["dataset"] == {"id": dataset["id"], "validation_split": 0.2, "train_samples": None,
                                         "split_seed": 0, "scale": "none", "task": "classification",
                                         "input_shape": None}
    client.post(f"/v1/jobs/{job['id']}/cancel")


def test_requests_naming_uploads_are_checked(client):
    wide = uploaded(client, as_npz(np.tile(X, (1, 1000)), Y))  # 4,000 features
    arch = {"hidden_layers": [4096, 4096]}
    errors = assert_error_shape(client.post("/v1/jobs", json={"dataset": {"id": wide["id"]}, "architecture": arch}),
                                422)["errors"]
    assert "parameters" in errors["architecture"]["hidden_layers"][0]
    errors = assert_error_shape(client.post("/v1/jobs", json={"dataset": {"id": "f" * 32},
                                                              "architecture": {"hidden_layers": [4]}}), 422)["errors"]
    assert errors == {"dataset": {"id": [f"No uploaded dataset with id '{'f' * 32}'."]}}
    errors = assert_error_shape(client.post("/v1/jobs", json={"dataset": {"name": "digits", "scale": "standard"},
                                                              "architecture": {"hidden_layers": [4]}}), 422)["errors"]
    assert "Only applies to uploaded datasets" in errors["dataset"]["scale"][0]
    errors = assert_error_shape(client.post("/v1/jobs", json={"dataset": {"id": wide["id"], "scale": "log"},
                                                              "architecture": {"hidden_layers": [4]}}), 422)["errors"]
    assert "Must be one of" in errors["dataset"]["scale"][0]


def test_an_upload_in_use_cannot_be_deleted_until_its_jobs_finish(client, settings):
    dataset = uploaded(client, as_npz(X, Y))
    # A cuda job waits on the gpu queue (no GPU worker in the tests): queued for as long as we like.
    job = submit(client, {"dataset": {"id": dataset["id"]}, "architecture": {"hidden_layers": [4]}, "device": "cuda"})
    body = assert_error_shape(client.delete(dataset["links"]["self"]), 409)
    assert job["id"] in body["message"]
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert client.delete(dataset["links"]["self"]).status_code == 204
    assert_error_shape(client.get(dataset["links"]["self"]), 404)
    assert not (settings.uploads_dir / dataset["id"]).exists()


def test_a_regression_upload_keeps_its_float_targets_and_shape_and_trains_a_cnn_request(client, settings):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 12)).astype(np.float32)
    y = (x @ rng.normal(size=12) + 100.0).astype(np.float32)  # float targets in their own units
    dataset = uploaded(client, as_npz(x, y), "signal.npz", task="regression", input_shape="[3, 4]")
    assert (dataset["task"], dataset["input_shape"], dataset["classes"], dataset["class_counts"]) == \
        ("regression", [3, 4], 0, {})
    assert dataset["target"]["min"] == float(y.min()) and dataset["target"]["max"] == float(y.max())
    assert client.get(dataset["links"]["self"]).get_json() == dataset
    stored = np.load(settings.uploads_dir / dataset["id"] / "y.npy", allow_pickle=False)
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, y)
    request = {"dataset": {"id": dataset["id"]}, "device": "cuda",  # waits on the gpu queue: never trained here
               "architecture": {"type": "cnn", "conv_layers": [4, {"channels": 4, "pool": "avg"}],
                                "hidden_layers": [8]}}
    job = submit(client, request)
    assert (job["request"]["dataset"]["task"], job["request"]["dataset"]["input_shape"], job["request"]["loss"]) == \
        ("regression", [3, 4], "mse")
    client.post(f"/v1/jobs/{job['id']}/cancel")
    # The upload's task decides the metrics: accuracy ones are refused, each named.
    errors = assert_error_shape(client.post("/v1/jobs", json={**request, "loss": "cross_entropy", "patience": 2,
                                                              "early_stopping": {"monitor": "val_accuracy"}}),
                                422)["errors"]
    assert set(errors) == {"loss", "early_stopping"} and "monitor" in errors["early_stopping"]
    # [3, 4] is 3 channels of length 4 (1-D): a third pool would take it to length 0; that block is named.
    deep = {**request, "architecture": {**request["architecture"], "conv_layers": [{"channels": 4, "pool": "max"}] * 3}}
    errors = assert_error_shape(client.post("/v1/jobs", json=deep), 422)["errors"]
    assert list(errors["architecture"]["conv_layers"]) == ["2"]


def test_whole_number_labels_are_classes_unless_the_upload_says_regression(client):
    y = np.arange(40) % 4  # counts or classes? only the uploader knows
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    assert uploaded(client, as_csv(x, y), "counts.csv")["task"] == "classification"
    dataset = uploaded(client, as_csv(x, y), "counts.csv", task="regression")
    assert dataset["task"] == "regression" and dataset["classes"] == 0 and dataset["target"]["max"] == 3.0


def test_upload_task_and_shape_mistakes_are_named(client):
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    y = np.arange(40) % 2
    for form, message in [({"task": "ranking"}, "Must be one of"), ({"input_shape": "1,6"}, "JSON list"),
                          ({"input_shape": "[6]"}, "2 or 3 positive integers"),
                          ({"input_shape": "[1, 0, 6]"}, "2 or 3 positive integers"),
                          ({"input_shape": "[" * 100_000 + "]" * 100_000}, "JSON list")]:
        errors = assert_error_shape(upload(client, as_npz(x, y), **form), 422)["errors"]
        assert list(errors) == list(form) and message in errors[next(iter(form))][0], (form, errors)
    errors = assert_error_shape(upload(client, as_npz(x, y), input_shape="[1, 2, 4]"), 422)["errors"]
    assert list(errors) == ["input_shape"] and "6 features" in errors["input_shape"][0]
    bad = y.astype(np.float32)
    bad[7] = np.nan
    body = assert_error_shape(upload(client, as_npz(x, bad), task="regression"), 422)
    assert "NaN or infinite" in body["errors"]["file"][0] and "row 8" in body["errors"]["file"][0]
    bad[7] = np.inf
    assert "NaN or infinite" in assert_error_shape(upload(client, as_npz(x, bad), task="regression"), 422)["message"]
    same = np.full(40, 2.5, np.float32)
    assert "vary" in assert_error_shape(upload(client, as_npz(x, same), task="regression"), 422)["message"]
