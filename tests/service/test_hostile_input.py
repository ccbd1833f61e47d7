"""Hostile and broken input: every client mistake is a 4xx with the standard error body,
never a 5xx, and the error handlers themselves never raise."""

from __future__ import annotations

import io
import json
from functools import cache

import numpy as np
import pytest
from marshmallow import ValidationError

from service.app import MAX_JSON_BYTES
from service.json_bodies import MAX_DEPTH
from tests.sample_uploads import as_csv, as_npz, blobs, declared_huge_npz, truncated_member_npz, upload
from tests.conftest import submit
from tests.service.test_api import SMALL, WAITING, assert_error_shape

VALID = json.dumps(SMALL)
DEEP = 5000

# (body, what the 400's message must say); each is sent as application/json to every endpoint that takes JSON.
BAD_JSON = {
    "not json": (b"{not json", "not valid JSON"),
    "truncated": (VALID[:-3].encode(), "not valid JSON"),
    "trailing garbage": (VALID.encode() + b" ]", "not valid JSON"),
    "deep arrays": (b"[" * DEEP + b"]" * DEEP, f"deeper than {MAX_DEPTH} levels"),
    "deep objects": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, f"deeper than {MAX_DEPTH} levels"),
    "deep inside a request": (json.dumps({**SMALL, "name": "x"}).replace('"x"', "[" * 100 + "]" * 100).encode(),
                              f"deeper than {MAX_DEPTH} levels"),
    "NaN": (VALID.replace('"epochs": 1', '"epochs": NaN').encode(), "NaN is not a JSON number"),
    "Infinity": (VALID.replace('"epochs": 1', '"epochs": Infinity').encode(), "Infinity is not a JSON number"),
    "-Infinity": (VALID.replace('"epochs": 1', '"epochs": -Infinity').encode(), "-Infinity is not a JSON number"),
    "1e400": (VALID.replace('"epochs": 1', '"epochs": 1e400').encode(), "too large"),
    "a 400-digit integer": (VALID.replace('"epochs": 1', '"epochs": 1' + "0" * 400).encode(), "too large"),
    "a 5000-digit integer": (VALID.replace('"epochs": 1', '"epochs": 1' + "0" * 5000).encode(), "too large"),
    "invalid UTF-8": (VALID.replace("moons", "mo\xff\xfens").encode("latin-1"), "not valid UTF-8"),
    "Latin-1": (json.dumps({**WAITING, "name": "café"}, ensure_ascii=False).encode("latin-1"), "not valid UTF-8"),
    "a lone surrogate in name": (json.dumps({**WAITING, "name": "\ud800"}).encode(), "lone UTF-16 surrogate"),
    "a lone surrogate in a key": (json.dumps({**WAITING, "\udfff": 1}).encode(), "lone UTF-16 surrogate"),
    "a BOM": (b"\xef\xbb\xbf" + VALID.encode(), "not valid JSON"),
    "deep after a duplicate key": (b'{"a":1,"a":' + b"[" * 70 + b"]" * 70 + b"}", f"deeper than {MAX_DEPTH} levels"),
}
JSON_ENDPOINTS = ["/v1/jobs", f"/v1/jobs/{'0' * 32}/resubmit", f"/v1/jobs/{'0' * 32}/cancel"]


@pytest.fixture(scope="module")
def throwaway(settings):
    """An app of its own with routes that fail the way views must never fail."""
    from service import create_app

    app = create_app({"SETTINGS": settings})

    @app.get("/_boom")
    def _boom():
        raise RuntimeError("an unexpected bug")

    @app.get("/_invalid")
    def _invalid():
        raise ValidationError({"field": ["Not like this."]})

    return app


def test_an_unexpected_exception_is_a_500_with_the_standard_body(throwaway, caplog):
    body = assert_error_shape(throwaway.test_client().get("/_boom"), 500)
    assert body == {"code": 500, "status": "Internal Server Error", "message": "Something went wrong on our side."}
    # Answered by our handler at the first try: Flask's last-resort handler (which logs
    # "Exception on /_boom") never ran, so the handler itself did not raise.
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [(r.name, r.getMessage()) for r in errors] == [("trainrx.api", "unhandled error")]
    assert isinstance(errors[0].exc_info[1], RuntimeError)


def test_a_validation_error_outside_the_schemas_is_a_422_with_the_standard_body(throwaway):
    body = assert_error_shape(throwaway.test_client().get("/_invalid"), 422)
    assert body["status"] == "Unprocessable Entity" and body["errors"] == {"field": ["Not like this."]}


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("case", list(BAD_JSON))
def test_bad_json_is_a_400_naming_the_problem(client, case, path):
    body, expected = BAD_JSON[case]
    found = assert_error_shape(client.post(path, data=body, content_type="application/json"), 400)
    assert expected in found["message"], found


def test_valid_unicode_and_numbers_still_pass(client):
    job = client.post("/v1/jobs", data=json.dumps({**WAITING, "name": "caf\u00e9 \U0001f600", "epochs": 2,
                                                   "optimizer": {"name": "sgd", "learning_rate": 1e-300}}),
                      content_type="application/json")
    assert job.status_code == 202, job.get_json()
    assert job.get_json()["name"] == "caf\u00e9 \U0001f600"
    client.post(f"/v1/jobs/{job.get_json()['id']}/cancel")
    nested = {**WAITING, "name": "x"}
    assert assert_error_shape(client.post("/v1/jobs", json={**nested, "extra": [[[[[]]]]]}), 422)["errors"] == {
        "extra": ["Unknown field."]}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                                          "multipart/form-data; boundary=x", "application/octet-stream", ""])
def test_wrong_content_types_are_415(client, content_type):
    assert_error_shape(client.post("/v1/jobs", data=VALID, content_type=content_type), 415)


def test_a_body_over_the_limit_is_413(client):
    body = assert_error_shape(client.post("/v1/jobs", data=b" " * (20 * 1024 * 1024),
                                          content_type="application/json"), 413)
    assert f"{MAX_JSON_BYTES:,}-byte limit" in body["message"]


def test_a_chunked_body_over_the_limit_is_413(client):
    """No Content-Length: the limit applies while the body is read (the server marks the
    stream terminated, as gunicorn does for chunked requests)."""
    stream = io.BytesIO(b"[" + b"0," * MAX_JSON_BYTES + b"0]")
    resp = client.post("/v1/jobs", input_stream=stream, content_type="application/json",
                       environ_overrides={"wsgi.input_terminated": True})
    assert_error_shape(resp, 413)


@pytest.mark.parametrize("finished", [False, True])
def test_a_cancel_racing_a_delete_is_a_404(client, monkeypatch, finished):
    """The DELETE lands between the cancel's conditional UPDATE and its read of the job."""
    store = client.application.extensions["trainrx"].store
    job = client.post("/v1/jobs", json=WAITING).get_json()
    if finished:
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    cancel = store.request_cancel

    def cancel_then_lose_the_race(job_id: str, *, owner):
        had = cancel(job_id, owner=owner)
        assert store.delete_finished(job_id, owner=owner)  # a DELETE of the (now) finished job
        return had

    monkeypatch.setattr(store, "request_cancel", cancel_then_lose_the_race)
    assert_error_shape(client.post(f"/v1/jobs/{job['id']}/cancel"), 404)


X, Y = blobs(rows_per_class=10)


@cache
def bool_bomb() -> bytes:
    """90 MB of booleans (within the upload limit) in about 90 KB; as float32 it would take 360 MB."""
    return as_npz(np.zeros((1_000_000, 90), bool), (np.arange(1_000_000) % 2).astype(np.uint8), compressed=True)


# name: (file, file name, status, what the message must say)
BAD_UPLOADS = {
    "an .npz header declaring 74 GiB": (declared_huge_npz, "d.npz", 413, "as their headers declare them"),
    "a bool bomb": (bool_bomb, "d.npz", 413, "once converted to float32 and int64"),
    "a pickled object array": (lambda: as_npz(np.array([[1, "a"]] * 30, dtype=object), Y), "d.npz", 422,
                               "cannot be read without pickle"),
    "a truncated zip": (lambda: as_npz(X, Y)[:300], "d.npz", 422, "Not a readable .npz file"),
    "a truncated member": (lambda: truncated_member_npz(X, Y), "d.npz", 422, "X is damaged in the .npz"),
    "not a zip": (lambda: b"hello, world", "d.npz", 422, "Not an .npz file"),
    "an empty file": (lambda: b"", "d.npz", 422, "empty"),
    "a CSV header field over 131,072 characters": (lambda: b"a" * 200_000 + b",label\n1,0\n", "d.csv", 422,
                                                   "field larger than field limit (131072)"),
    "binary garbage as CSV": (lambda: bytes(range(256)) * 64, "d.csv", 422, "not UTF-8"),
    "ragged CSV rows": (lambda: as_csv(X, Y) + b"1,2\n", "d.csv", 422, "columns but the header has"),
    "NUL bytes in a CSV": (lambda: b"a,label\n\0,0\n", "d.csv", 422, "non-numeric value"),
    "a CSV without a newline": (lambda: b"a," * 1000 + b"label", "d.csv", 422, "names column 'a' twice"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_hostile_uploads_are_4xx_naming_the_problem(client, case):
    make, filename, status, expected = BAD_UPLOADS[case]
    body = assert_error_shape(upload(client, make(), filename), status)
    assert expected in body["message"], body


def test_uploads_are_read_in_a_child_process_not_the_api(client, monkeypatch):
    """Reading a file in the API process itself would stall every other request of it."""
    def not_here(*args, **kwargs):
        raise AssertionError("an upload was read in the API process")

    monkeypatch.setattr("core.upload_parsing.parse_upload", not_here)
    monkeypatch.setattr("core.upload_sandbox.parse_upload", not_here)
    monkeypatch.setattr("service.datasets_api.parse_upload", not_here, raising=False)
    resp = upload(client, as_npz(X, Y), "d.npz")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["class_counts"] == {"0": 10, "1": 10, "2": 10}


def test_a_multipart_part_without_a_readable_name_is_a_422(client):
    # werkzeug files a part whose name it cannot read (an escaped closing quote) under None;
    # schemathesis found this as a 500 (sorting None among the field names).
    body = (b'--b\r\nContent-Disposition: form-data; name="x\\"\r\n\r\n1\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\na,label\n1,0\n\r\n--b--\r\n')
    resp = client.post("/v1/datasets", data=body, content_type="multipart/form-data; boundary=b")
    assert assert_error_shape(resp, 422)["errors"] == {"(a part without a readable name)": ["Unknown field."]}


def test_an_invalid_last_event_id_query_is_a_400_even_with_the_header(client):
    # The header wins, but a bad query parameter next to it was silently ignored (schemathesis).
    job = submit(client, WAITING)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202  # a finished job's stream ends
    resp = client.get(f"/v1/jobs/{job['id']}/events?last_event_id=-5", headers={"Last-Event-ID": "3"})
    assert_error_shape(resp, 400)
    assert client.get(f"/v1/jobs/{job['id']}/events?last_event_id=0", headers={"Last-Event-ID": "3"}).status_code == 200


def test_a_last_event_id_beyond_64_bits_is_a_400_not_a_500(client):
    # schemathesis found this as a 500 (SQLite cannot bind an integer that large).
    job = submit(client, WAITING)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    for huge in (str(2**63), "312436297546488990568284160"):
        assert_error_shape(client.get(f"/v1/jobs/{job['id']}/events?last_event_id={huge}"), 400)
        assert_error_shape(client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": huge}), 400)
    assert client.get(f"/v1/jobs/{job['id']}/events?last_event_id={2**63 - 1}").status_code == 200
