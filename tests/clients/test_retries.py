"""The retry policy against a small scripted HTTP server (a real socket, no mocks):
what is retried, how often, and what is not."""

from __future__ import annotations

import json
import time

import pytest

from tests.clients.conftest import JOB
from trainrx import (APIConnectionError, APITimeoutError, Client, ConflictError, InternalServerError,
                     RateLimitError)

UNAVAILABLE = (503, {"code": 503, "status": "Service Unavailable", "message": "busy"}, {"Retry-After": "0"})
PATH = f"/v1/jobs/{'a' * 32}"


def test_a_503_then_200_is_retried_and_succeeds(scripted):
    script, client = scripted
    script.on("GET", PATH, UNAVAILABLE, (200, JOB, {}))
    assert client.jobs.get("a" * 32).status == "running"
    assert len(script.seen) == 2


def test_retries_stop_after_max_retries_with_the_last_error(scripted):
    script, client = scripted
    script.on("GET", PATH, UNAVAILABLE)
    with pytest.raises(InternalServerError) as caught:
        client.jobs.get("a" * 32)
    assert len(script.seen) == 3  # the first try + 2 retries
    err = caught.value
    assert err.status_code == 503 and err.body["message"] == "busy" and err.request_id == "req-3"


def test_the_retry_count_is_overridable_per_client_and_per_call(scripted):
    script, client = scripted
    script.on("GET", PATH, UNAVAILABLE)
    with pytest.raises(InternalServerError):
        client.jobs.get("a" * 32, max_retries=0)
    assert len(script.seen) == 1
    with pytest.raises(InternalServerError):
        client.with_options(max_retries=4).jobs.get("a" * 32)
    assert len(script.seen) == 1 + 5


def test_429_and_408_are_retried_honouring_retry_after(scripted):
    script, client = scripted
    script.on("GET", PATH, (429, {"code": 429, "message": "slow down"}, {"Retry-After": "1"}),
              (408, {"code": 408, "message": "timeout"}, {"Retry-After": "0"}), (200, JOB, {}))
    started = time.monotonic()
    assert client.jobs.get("a" * 32).id == "a" * 32
    assert len(script.seen) == 3
    assert time.monotonic() - started >= 1.0  # it waited as Retry-After said
    script.on("GET", PATH, (429, {"code": 429, "message": "slow down"}, {"Retry-After": "0"}))
    with pytest.raises(RateLimitError):
        client.jobs.get("a" * 32, max_retries=0)


def test_a_post_is_retried_only_with_an_idempotency_key(scripted):
    script, client = scripted
    script.on("POST", "/v1/jobs", UNAVAILABLE, (202, {**JOB, "status": "queued"}, {}))
    assert client.jobs.create({"dataset": {"name": "moons"}}).status == "queued"
    keys = [headers.get("Idempotency-Key") for _, _, headers in script.seen]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]  # the same key both times

    script.seen.clear()
    script.on("POST", f"{PATH}/cancel", UNAVAILABLE, (202, JOB, {}))
    with pytest.raises(InternalServerError):
        client.jobs.cancel("a" * 32)  # no Idempotency-Key: never repeated
    assert len(script.seen) == 1


def test_a_409_is_never_retried(scripted):
    script, client = scripted
    script.on("GET", f"{PATH}/weights", (409, {"code": 409, "message": "no weights yet"}, {}), (200, JOB, {}))
    with pytest.raises(ConflictError) as caught:
        client.jobs.weights_bytes("a" * 32)
    assert len(script.seen) == 1 and caught.value.status_code == 409


def test_a_dropped_connection_is_retried_then_reported(scripted):
    script, client = scripted
    script.on("GET", PATH, ("drop", None, {}), (200, JOB, {}))
    assert client.jobs.get("a" * 32).status == "running"
    assert len(script.seen) == 2
    script.on("GET", PATH, ("drop", None, {}))
    with pytest.raises(APIConnectionError) as caught:
        client.jobs.get("a" * 32, max_retries=1)
    assert caught.value.status_code is None and caught.value.body is None


def test_a_slow_answer_is_a_timeout(scripted):
    script, client = scripted
    script.on("GET", PATH, ("slow", 2.0, {}))
    with pytest.raises(APITimeoutError) as caught:
        client.jobs.get("a" * 32, timeout=0.3, max_retries=0)
    assert isinstance(caught.value, APIConnectionError)


def test_nothing_listening_is_a_connection_error():
    with Client(base_url="http://127.0.0.1:9", max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            client.datasets.list()
    assert "127.0.0.1:9" in str(caught.value)


def test_wait_falls_back_to_polling_without_an_event_stream(scripted):
    script, client = scripted
    script.on("GET", f"{PATH}/events", (404, {"code": 404, "message": "no such route"}, {}))
    script.on("GET", PATH, (200, JOB, {}), (200, JOB, {}), (200, {**JOB, "status": "succeeded"}, {}))
    job = client.jobs.wait("a" * 32, timeout=30, poll_interval=0.05)
    assert job.status == "succeeded"
    assert [p for _, p, _ in script.seen].count(PATH) == 3


def test_a_broken_event_stream_is_resumed_with_last_event_id(scripted):
    script, client = scripted
    sse = {"Content-Type": "text/event-stream"}
    running = '{"job_id": "j", "status": "running", "attempt": 1}'
    first = (f"retry: 10\n\nid: 1000000000\nevent: status\ndata: {running}\n\n"
             'id: 1000000001\nevent: epoch\ndata: {"epoch": 1, "train_loss": 0.5}\n\n')  # then the server goes away
    rest = ('id: 1000000002\nevent: epoch\ndata: {"epoch": 2, "train_loss": 0.4}\n\n'
            ': keep-alive\n\n'
            'id: 1999999998\nevent: status\ndata: {"job_id": "j", "status": "succeeded", "attempt": 1}\n\n'
            f"id: 1999999999\nevent: end\ndata: {json.dumps({**JOB, 'status': 'succeeded'})}\n\n")
    script.on("GET", f"{PATH}/events", (200, first, sse), (200, rest, sse))
    events = list(client.jobs.stream("a" * 32))
    assert [(e.type, e.id) for e in events] == [("status", 1000000000), ("epoch", 1000000001),
                                                ("epoch", 1000000002), ("status", 1999999998), ("end", 1999999999)]
    assert events[-1].job.status == "succeeded" and events[2].train_loss == 0.4
    resumed = [headers.get("Last-Event-ID") for _, _, headers in script.seen]
    assert resumed == [None, "1000000001"]


EXPORTING = (409, {"code": 409, "status": "Conflict", "message": "being exported"}, {"Retry-After": "0"})


def test_download_model_waits_while_the_export_runs_and_stops_on_a_409_without_retry_after(scripted, tmp_path):
    script, client = scripted
    script.on("GET", f"{PATH}/model.onnx", EXPORTING, EXPORTING, (200, "the onnx bytes", {}))
    path = client.jobs.download_model("a" * 32, tmp_path / "m.onnx", format="onnx")
    assert path.read_text() == "the onnx bytes" and len(script.seen) == 3
    script.on("GET", f"{PATH}/model", (409, {"code": 409, "message": "The job has no exported model yet"}, {}))
    with pytest.raises(ConflictError):  # not finished, or no weights: nothing to wait for
        client.jobs.download_model("a" * 32, tmp_path / "m.pt2")
    assert len(script.seen) == 4 and not (tmp_path / "m.pt2").exists()
