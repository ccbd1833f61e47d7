"""The SDK against a live API and a real worker: submit, wait, results, errors."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

import trainrx
from tests.clients.conftest import SMALL, WAITING
from tests.conftest import OTHER_OWNER, OWNER, TOKENS
from trainrx import (APIError, APIStatusError, AuthenticationError, Client, ConflictError, Curves, Diagnosis, Job,
                     NotFoundError, PermissionDeniedError, SpecError, UnprocessableEntityError, WaitTimeoutError)


def test_create_wait_curves_diagnosis_weights_round_trip(sdk, tmp_path, capsys):
    spec_file = tmp_path / "model.yaml"
    spec_file.write_text(yaml.safe_dump(SMALL))
    job = sdk.jobs.create(spec_file)
    assert isinstance(job, Job) and job.status == "queued" and job.name == "sdk-small"
    assert job.request["activation"] == {"name": "relu"}  # the normalised request

    done = sdk.jobs.wait(job.id, timeout=300, progress=True)
    assert done.status == "succeeded" and done.finished
    assert done.summary.epochs_run == 6 and 0 <= done.summary.val_accuracy <= 1
    assert done.created_at.tzinfo is not None and done.finished_at >= done.started_at
    assert "epoch 6/6" in capsys.readouterr().err  # the progress display

    curves = sdk.jobs.curves(job.id)
    assert isinstance(curves, Curves) and curves.epoch == [1, 2, 3, 4, 5, 6]
    assert curves.val_accuracy[-1] == done.summary.val_accuracy
    assert set(curves.grad_norm) == {"hidden1", "output"} and len(curves.rows()) == 6

    diagnosis = sdk.jobs.diagnosis(job.id)
    assert isinstance(diagnosis, Diagnosis) and diagnosis.final and diagnosis.verdict is not None
    assert all(f.code for f in diagnosis.findings)

    path = sdk.jobs.download_weights(job.id, tmp_path / "out" / "w.safetensors")
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert json.loads(header["__metadata__"]["spec"]) == done.request
    assert sdk.jobs.get(job.id).summary == done.summary


def test_a_dict_spec_and_the_same_idempotency_key_give_the_same_job(sdk):
    key = uuid.uuid4().hex
    first = sdk.jobs.create({**WAITING, "name": "idem"}, idempotency_key=key)
    again = sdk.jobs.create({**WAITING, "name": "idem"}, idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(ConflictError) as caught:
        sdk.jobs.create({**WAITING, "name": "other"}, idempotency_key=key)
    err = caught.value
    assert err.status_code == 409 and err.body["code"] == 409 and err.request_id
    assert sdk.jobs.cancel(first.id).status == "cancelled"


def test_a_422_carries_the_field_errors(sdk):
    with pytest.raises(UnprocessableEntityError) as caught:
        sdk.jobs.create({"dataset": {"name": "nope"}, "architecture": {"hidden_layers": [0]},
                         "activation": "softmax"})
    err = caught.value
    assert isinstance(err, APIStatusError) and isinstance(err, APIError)
    assert err.status_code == 422 and err.body["message"] == "The request is invalid."
    assert "Must be one of" in err.errors["activation"]["name"][0]
    assert err.errors["architecture"]["hidden_layers"] and err.errors["dataset"]["name"]
    assert err.request_id and len(err.request_id) >= 16
    assert "activation.name" in str(err)


def test_not_found_and_request_ids(sdk, api_url):
    with pytest.raises(NotFoundError) as caught:
        sdk.jobs.get("f" * 32)
    assert caught.value.status_code == 404 and "No job" in caught.value.message
    with Client(base_url=api_url, token=TOKENS[OWNER], headers={"X-Request-ID": "ci-run-42"}) as client:
        with pytest.raises(NotFoundError) as caught:
            client.jobs.curves("0" * 32)
    assert caught.value.request_id == "ci-run-42"  # the server echoes the caller's id


def test_list_iterates_across_pages_and_filters(sdk):
    ids = [sdk.jobs.create({**WAITING, "name": f"page-{i}"}).id for i in range(3)]
    listed = [j.id for j in sdk.jobs.list(status="queued", page_size=1)]
    assert set(ids) <= set(listed)
    assert [j.id for j in sdk.jobs.list(page_size=2, limit=3)] == [j.id for j in sdk.jobs.list(limit=3)]
    assert len(list(sdk.jobs.list(page_size=1, limit=2))) == 2
    for job_id in ids:
        sdk.jobs.cancel(job_id)
    assert not set(ids) & {j.id for j in sdk.jobs.list(status="queued")}


def test_cancel_then_cancel_again_is_a_conflict(sdk):
    job = sdk.jobs.create(WAITING)
    assert sdk.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(ConflictError):
        sdk.jobs.cancel(job.id)
    with pytest.raises(ConflictError):  # no weights
        sdk.jobs.download_weights(job.id, "never-written.safetensors")


def test_wait_gives_up_after_its_timeout_and_the_job_goes_on(sdk):
    job = sdk.jobs.create(WAITING)
    with pytest.raises(WaitTimeoutError) as caught:
        sdk.jobs.wait(job.id, timeout=1.5)
    assert caught.value.job_id == job.id and isinstance(caught.value, TimeoutError)
    assert sdk.jobs.get(job.id).status == "queued"
    sdk.jobs.cancel(job.id)


def test_datasets_list(sdk):
    datasets = {d.name: d for d in sdk.datasets.list()}
    assert {"digits", "mnist1d", "moons", "spirals", "diabetes", "friedman1"} <= set(datasets)
    assert (datasets["digits"].task, datasets["digits"].input_shape) == ("classification", [1, 8, 8])
    assert (datasets["friedman1"].task, datasets["friedman1"].classes, datasets["friedman1"].input_shape) == \
        ("regression", 0, None)


def test_bad_spec_files(sdk, tmp_path):
    with pytest.raises(SpecError):
        sdk.jobs.create(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError):
        sdk.jobs.create(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError):
        sdk.jobs.create(listed)


def test_client_reads_url_and_token_from_the_environment(monkeypatch, api_url):
    monkeypatch.setenv("TRAINRX_URL", api_url + "/")
    monkeypatch.setenv("TRAINRX_TOKEN", TOKENS[OWNER])
    with Client() as client:
        assert client.base_url == api_url
        assert client._http.headers["Authorization"] == f"Bearer {TOKENS[OWNER]}"
        assert client.datasets.list()
        assert client.me().owner == OWNER and client.me().role == "user"
    custom = Client(base_url=api_url, timeout=5, max_retries=0).with_options(max_retries=4)
    assert custom.max_retries == 4 and custom.timeout == 5
    assert trainrx.DEFAULT_MAX_RETRIES == 2 and trainrx.DEFAULT_TIMEOUT.read == 60.0


def test_a_missing_or_wrong_token_is_an_authentication_error_and_owners_are_apart(sdk, api_url):
    job = sdk.jobs.create(WAITING)
    for token in ("", "trx_wrong-" + "0" * 40):
        with Client(base_url=api_url, token=token, max_retries=0) as anonymous:
            with pytest.raises(AuthenticationError) as caught:
                anonymous.jobs.get(job.id)
            assert caught.value.status_code == 401
    with Client(base_url=api_url, token=TOKENS[OTHER_OWNER]) as other:
        with pytest.raises(NotFoundError):
            other.jobs.get(job.id)
        assert job.id not in [j.id for j in other.jobs.list(limit=50)]
    assert sdk.jobs.get(job.id).owner == OWNER
    sdk.jobs.cancel(job.id)


def test_a_pipeline_makes_a_short_lived_token_and_revokes_it(sdk, api_url):
    made = sdk.tokens.create(label="ci run 42", expires_in_days=1)
    assert made.token.startswith("trx_") and made.owner == OWNER and made.expires_at is not None
    assert made.id in [t.id for t in sdk.tokens.list()] and all(t.token is None for t in sdk.tokens.list())
    with Client(base_url=api_url, token=made.token) as ci:
        me = ci.me()
        assert (me.owner, me.via, me.token.label) == (OWNER, "bearer", "ci run 42")
    with pytest.raises(PermissionDeniedError):
        sdk.tokens.create(role="admin")
    sdk.tokens.revoke(made.id)
    assert made.id not in [t.id for t in sdk.tokens.list()]
