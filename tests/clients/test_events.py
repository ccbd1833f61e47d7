"""GET /v1/jobs/{id}/events through a real gunicorn (gevent workers), a real
worker publishing through Redis, and the SDK's stream."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.clients.conftest import SMALL, WAITING
from tests.conftest import OWNER, TOKENS

AUTH = {"Authorization": f"Bearer {TOKENS[OWNER]}"}
from trainrx import Client, EndEvent, EpochEvent, RateLimitError, StatusEvent
from trainrx._sse import iter_sse

from core.events import channel
from tests.clients.conftest import start_api

# Long enough (a few seconds) that a stream reads part of it live.
LONG = {"name": "events-long", "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [64, 64]},
        "epochs": 150, "batch_size": 8}


def triples(events) -> list[tuple]:
    return [(e.id, e.type, e.raw) for e in events]


def test_the_stream_ends_with_the_final_status_and_the_finished_job(sdk):
    job = sdk.jobs.create(SMALL)
    events = list(sdk.jobs.stream(job.id))
    ids = [e.id for e in events]
    assert ids == sorted(set(ids)), "ids increase, none repeats"
    assert isinstance(events[0], StatusEvent) and events[0].status in ("queued", "running")
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert [e.epoch for e in epochs] == [1, 2, 3, 4, 5, 6]
    assert isinstance(events[-2], StatusEvent) and events[-2].status == "succeeded"
    end = events[-1]
    assert isinstance(end, EndEvent) and end.job.status == "succeeded" and end.job.id == job.id
    assert end.job.summary.epochs_run == 6
    curves = sdk.jobs.curves(job.id)
    for row, event in zip(curves.rows(), epochs, strict=True):  # each event carries its row of the curves
        assert {k: event.raw[k] for k in row} == row
    # A fresh stream of a finished job replays it all, identically.
    assert triples(sdk.jobs.stream(job.id)) == [t for t in triples(events) if t[2].get("status") != "queued"]


def test_a_reconnect_with_last_event_id_neither_repeats_nor_skips(sdk, api_url):
    job = sdk.jobs.create(LONG)
    first = []
    for event in sdk.jobs.stream(job.id):
        first.append(event)
        if isinstance(event, EpochEvent) and event.epoch == 3:
            break  # the connection drops mid-run
    assert sdk.jobs.get(job.id).status == "running", "the job should still run while we reconnect"

    # Raw HTTP with the Last-Event-ID header, as EventSource reconnects.
    second = []
    with httpx.stream("GET", f"{api_url}/v1/jobs/{job.id}/events", timeout=120,
                      headers={**AUTH, "Last-Event-ID": str(first[-1].id)}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        for sse in iter_sse(resp.iter_lines()):
            if sse is not None and sse.id is not None:
                second.append((int(sse.id), sse.event))
                if sse.event == "end":
                    break
    # The first stream may open while the job still waits (behind another job or an export task):
    # a replay of the finished job starts where it ran, as in the test above.
    whole = [(e.id, e.type) for e in first
             if not (isinstance(e, StatusEvent) and e.status == "queued")] + second
    replay = [(e.id, e.type) for e in sdk.jobs.stream(job.id)]
    assert whole == replay, "reconnecting gave exactly the events a full replay gives"
    epochs = [i for i, kind in whole if kind == "epoch"]
    final = sdk.jobs.get(job.id)
    assert len(epochs) == final.summary.epochs_run == 150
    assert whole[-2][1] == "status" and whole[-1][1] == "end"


def test_the_sdk_resumes_from_a_given_event_id(sdk):
    job = sdk.jobs.create(SMALL)
    everything = list(sdk.jobs.stream(job.id))
    middle = next(e for e in everything if isinstance(e, EpochEvent) and e.epoch == 2)
    rest = list(sdk.jobs.stream(job.id, last_event_id=middle.id))
    assert [e.id for e in rest] == [e.id for e in everything if e.id > middle.id]
    assert isinstance(rest[0], EpochEvent) and rest[0].epoch == 3


def test_a_queued_job_streams_keep_alives_then_its_cancellation(sdk, api_url):
    job = sdk.jobs.create(WAITING)
    seen: list = []
    with httpx.stream("GET", f"{api_url}/v1/jobs/{job.id}/events", headers=AUTH, timeout=30) as resp:
        lines = resp.iter_lines()
        for sse in iter_sse(lines):
            seen.append(sse)
            if sse is None:  # the keep-alive comment (every second under the test server)
                break
        sdk.jobs.cancel(job.id)  # the API publishes the cancellation of a queued job
        for sse in iter_sse(lines):
            if sse is not None and sse.event == "end":
                seen.append(sse)
                break
            seen.append(sse)
    events = [s for s in seen if s is not None and s.event in ("status", "end")]
    assert [(s.id, s.event) for s in events] == [("0", "status"), ("1", "status"), ("2", "end")]
    assert '"cancelled"' in events[1].data and '"cancelled"' in events[2].data


def test_many_open_streams_do_not_block_the_api(sdk, api_url, app):
    """More open streams than gthread's 2 x 8 threads (or the database pool) would allow."""
    job = sdk.jobs.create(WAITING)
    opened, ended, results = threading.Barrier(41), [], []

    def follow() -> None:
        with httpx.stream("GET", f"{api_url}/v1/jobs/{job.id}/events", headers=AUTH, timeout=60) as resp:
            stream = iter_sse(resp.iter_lines())
            first = next(s for s in stream if s is not None and s.event == "status")
            opened.wait(timeout=60)
            kinds = [first.event] + [s.event for s in stream if s is not None and s.id is not None]
            results.append(kinds)
        ended.append(True)

    threads = [threading.Thread(target=follow, daemon=True) for _ in range(40)]
    for t in threads:
        t.start()
    opened.wait(timeout=60)  # 40 streams are open now
    subscribers = app.extensions["trainrx"].redis.pubsub_numsub(channel(job.id))[0][1]
    assert 1 <= subscribers <= 2, "one shared pub/sub connection per API process, not one per stream"
    assert httpx.get(f"{api_url}/healthz", timeout=10).status_code == 200
    other = sdk.with_options(timeout=10, max_retries=0).jobs.create(WAITING)
    assert sdk.jobs.get(other.id).status == "queued"
    sdk.jobs.cancel(job.id)
    sdk.jobs.cancel(other.id)
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 40 and all(kinds == ["status", "status", "end"] for kinds in results)


@pytest.mark.parametrize("header,code", [("abc", 400), ("-5", 400)])
def test_bad_last_event_ids_and_unknown_jobs(sdk, api_url, header, code):
    job = sdk.jobs.create(WAITING)
    resp = httpx.get(f"{api_url}/v1/jobs/{job.id}/events", headers={**AUTH, "Last-Event-ID": header}, timeout=10)
    assert resp.status_code == code and resp.json()["code"] == code
    assert httpx.get(f"{api_url}/v1/jobs/{'e' * 32}/events", headers=AUTH, timeout=10).status_code == 404
    sdk.jobs.cancel(job.id)


def test_a_job_whose_worker_was_lost_streams_on_without_repeats(sdk, app):
    """A worker died after epoch 1 (its heartbeat stopped); the recovery sweep re-queues the
    job and another run trains it. The stream goes on with higher ids: status changes, then
    epochs 2 and 3. Epoch 1, trained again, keeps its id, so the client is not sent it twice."""
    from datetime import timedelta

    from sqlalchemy import update

    from core.db import jobs
    from core.jobstore import utcnow
    from core.spec import normalise

    parts = app.extensions["trainrx"]
    request = normalise({**SMALL, "epochs": 3}, limits=parts.settings.limits, resolver=None)
    job, _ = parts.store.create(request, "cpu", owner=OWNER)  # stored, not published
    parts.store.start(job["id"], "dead-worker")
    parts.store.record_epoch(job["id"], 1, {"epoch": 1, "train_loss": 9.0, "grad_norm": {}}, None)
    stale = utcnow() - timedelta(minutes=5)
    with parts.store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job["id"]).values(started_at=stale, heartbeat_at=stale))

    stream = sdk.jobs.stream(job["id"])
    first = [next(stream), next(stream)]  # what the database holds: running, one epoch
    assert [(e.type, e.id) for e in first] == [("status", 1), ("epoch", 1_000_000)]
    rest = list(stream)  # the sweep re-queues it within the grace period, a worker runs it
    kinds = [(e.type, getattr(e, "status", None) or getattr(e, "epoch", None)) for e in rest]
    assert kinds[-4:] == [("epoch", 2), ("epoch", 3), ("status", "succeeded"), ("end", None)]
    assert ("status", "running") in kinds and ("epoch", 1) not in kinds
    assert rest[-1].job.attempts == 1
    ids = [e.id for e in first + rest]
    assert ids == sorted(set(ids))


@pytest.fixture(scope="module")
def short_streams_api(settings, worker, tmp_path_factory):
    """An API whose streams live about a second, and whose owners may hold 3 at a time."""
    yield from start_api(settings, tmp_path_factory.mktemp("api-short") / "gunicorn.log",
                         TRAINRX_EVENTS_KEEPALIVE_S="1", TRAINRX_STREAM_MAX_S="1", TRAINRX_MAX_STREAMS_PER_OWNER="3")


def test_streams_past_their_lifetime_reconnect_and_deliver_every_event_once(short_streams_api):
    connects = []
    http = httpx.Client(base_url=short_streams_api, headers={"Authorization": f"Bearer {TOKENS[OWNER]}"},
                        event_hooks={"request": [lambda r: connects.append(r.url.path)]})
    with Client(base_url=short_streams_api, http_client=http) as sdk:
        # About 100 steps an epoch: several seconds from queued to the end, several 1-s streams.
        job = sdk.jobs.create({**SMALL, "epochs": 40, "batch_size": 8})
        events = list(sdk.jobs.stream(job.id))
        ids = [e.id for e in events]
        assert ids == sorted(set(ids)), "no event repeated"
        assert [e.epoch for e in events if isinstance(e, EpochEvent)] == list(range(1, 41)), "none skipped"
        assert isinstance(events[-1], EndEvent) and events[-1].job.status == "succeeded"
    http.close()
    assert connects.count(f"/v1/jobs/{job.id}/events") >= 3, "the server ended the stream; the SDK came back"


def test_a_stream_over_the_owner_cap_is_429_at_once_across_processes(short_streams_api):
    """Three streams held (on either gunicorn process), the fourth is refused; one closes, one opens."""
    headers = {"Authorization": f"Bearer {TOKENS[OWNER]}"}
    with Client(base_url=short_streams_api, token=TOKENS[OWNER]) as sdk:
        job = sdk.jobs.create(WAITING)
    url = f"{short_streams_api}/v1/jobs/{job.id}/events"
    clients = [httpx.Client(timeout=10, headers=headers) for _ in range(4)]
    try:
        held = [c.stream("GET", url) for c in clients[:3]]
        opened = [h.__enter__() for h in held]
        assert [r.status_code for r in opened] == [200, 200, 200]
        refused = clients[3].get(url)
        assert refused.status_code == 429 and "TRAINRX_MAX_STREAMS_PER_OWNER" in refused.json()["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        assert clients[3].get(f"{short_streams_api}/healthz").status_code == 200
        with Client(base_url=short_streams_api, token=TOKENS[OWNER], max_retries=0) as sdk:
            with pytest.raises(RateLimitError):
                next(iter(sdk.jobs.stream(job.id)))
    finally:
        for c in clients:
            c.close()
    import time

    deadline = time.monotonic() + 10  # closed streams give their slots back (at their next write at the latest)
    while (resp := httpx.get(url, headers=headers, timeout=10)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert resp.status_code == 200
