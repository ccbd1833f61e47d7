"""GET /v1/events: one stream for all of an owner's jobs, through a real gunicorn (gevent
workers), the session's real worker, Redis and database; and its cursor, unit by unit."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import redis
from werkzeug.exceptions import HTTPException

from core.db import make_engine
from core.events import EVENT_ID_STRIDE
from core.tokens import USER, TokenStore, new_token
from service.event_hub import EventHub
from service.owner_events_api import GRACE_S, MAX_TRACKED, Cursor, job_card, job_event_id, window_cursor
from tests.clients.conftest import WAITING, start_api
from core.redis_urls import redis_py_url

TINY = {"name": "owner-events", "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8]}, "epochs": 3}

# --- the cursor, without services ------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def row(status: str, *, created_s_ago: float = 3600, finished_s_ago: float | None = None, epoch: int = 0,
        seq: int = 0, high: int = 0) -> dict:
    return {"id": uuid.uuid4().hex, "status": status, "created_at": NOW - timedelta(seconds=created_s_ago),
            "finished_at": None if finished_s_ago is None else NOW - timedelta(seconds=finished_s_ago),
            "progress_epoch": epoch, "status_seq": seq, "status_high": high, "attempts": 0, "started_at": None,
            "request": {"epochs": 5}}


def test_a_jobs_event_id_is_the_newest_id_on_its_own_stream():
    assert job_event_id(row("queued")) == 0
    assert job_event_id(row("running", seq=1)) == 1  # started, no epoch yet
    assert job_event_id(row("running", epoch=3, seq=1)) == 3 * EVENT_ID_STRIDE
    # finished after epoch 5, its status sequence at 2: the final status is 5*10^6 + 2, `end` one more
    assert job_event_id(row("succeeded", finished_s_ago=1, epoch=5, seq=2, high=5)) == 5 * EVENT_ID_STRIDE + 3


def test_a_card_shows_accuracy_or_r2_before_the_loss():
    def card_metric(summary: dict) -> str:
        job = {**row("succeeded", finished_s_ago=1, epoch=5, seq=2, high=5), "summary": summary}
        return job_card(job)["metric"]["name"]

    assert card_metric({"val_accuracy": 0.9, "val_loss": 0.2, "epochs_run": 5}) == "val_accuracy"
    assert card_metric({"val_r2": 0.8, "val_loss": 0.2, "val_mae": 0.3, "epochs_run": 5}) == "val_r2"
    assert card_metric({"val_loss": 0.2, "epochs_run": 5}) == "val_loss"


def test_the_cursor_names_what_can_still_change_and_round_trips():
    in_flight = [row("queued"), row("running", epoch=2, seq=1)]
    recent = row("succeeded", finished_s_ago=GRACE_S / 2, epoch=5, seq=2, high=5)
    settled = row("failed", finished_s_ago=GRACE_S * 4, seq=2)
    cursor = window_cursor([*in_flight, recent, settled], NOW)
    assert set(cursor.known) == {j["id"] for j in [*in_flight, recent]}
    assert cursor.known[recent["id"]] == job_event_id(recent)
    assert Cursor.decode(cursor.encode()) == cursor
    assert cursor.since() == NOW - timedelta(seconds=GRACE_S)


def test_a_long_cursor_keeps_the_jobs_in_flight():
    finished = [row("succeeded", created_s_ago=5, finished_s_ago=1) for _ in range(MAX_TRACKED)]
    running = row("running", created_s_ago=7200, seq=1)
    cursor = window_cursor([running, *finished], NOW)
    assert len(cursor.known) == MAX_TRACKED and running["id"] in cursor.known


@pytest.mark.parametrize("raw", ["abc", "12.nothex-1", f"12.{'a' * 32}", f"12.{'a' * 32}--1", "1" * 20,
                                 "9" * 15, str(int((time.time() + 2 * 86_400) * 1000))])  # no such year; the future
def test_a_cursor_this_stream_did_not_send_is_refused(raw):
    with pytest.raises(HTTPException) as refused:
        Cursor.decode(raw)
    assert refused.value.code == 400


def test_a_job_missing_from_a_full_window_is_not_called_deleted(monkeypatch):
    """The window holds the newest WINDOW_LIMIT jobs: an older one the client knows is only left out."""
    from core import migrate
    from core.jobstore import JobStore
    from service import owner_events_api

    engine = make_engine("sqlite://")
    migrate.upgrade(engine)
    store = JobStore(engine)
    made = [store.create({"dataset": {"name": "moons"}, "epochs": 1}, "cpu", owner="ann")[0] for _ in range(3)]
    stream = object.__new__(owner_events_api._OwnerStream)  # its scan alone: no app, no Redis
    stream.owner, stream.store, stream.foreign = "ann", store, set()

    def scan(known: dict[str, int]) -> list[str]:
        stream.cursor = Cursor(int(time.time() * 1000), known)
        return [line for event in stream._scan() for line in event.splitlines() if line.startswith("event:")]

    every = {job["id"]: job_event_id(job) for job in made}
    monkeypatch.setattr(owner_events_api, "WINDOW_LIMIT", 2)  # full: the oldest job is left out
    assert scan(every) == []
    monkeypatch.setattr(owner_events_api, "WINDOW_LIMIT", 10)  # complete: a job it lacks is gone
    assert scan({**every, "f" * 32: 1}) == ["event: deleted"]
    engine.dispose()


# --- the shared pub/sub connection: a pattern beside channels ----------------------------------------------------

def test_a_pattern_subscription_gets_every_matching_channel_and_channels_stay_apart(redis_url):
    hub = EventHub.for_url(redis_py_url(redis_url))
    prefix = f"trainrx:test-hub-{uuid.uuid4().hex[:8]}:"
    everything = hub.subscribe(prefix + "*", pattern=True)
    one = hub.subscribe(prefix + "a")
    assert everything is not None and one is not None
    publisher = redis.Redis.from_url(redis_py_url(redis_url))
    publisher.publish(prefix + "a", "1")
    publisher.publish(prefix + "b", "2")
    got = [everything.get(timeout=5), everything.get(timeout=5)]
    assert [(channel, bytes(data)) for channel, data in got] == [(prefix + "a", b"1"), (prefix + "b", b"2")]
    assert bytes(one.get(timeout=5)) == b"1" and one.get(timeout=0.2) is None
    everything.close()
    one.close()
    assert hub.followed() == 0


# --- the stream, end to end ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(settings, tmp_path_factory):
    """gunicorn (gevent) with a one-second keep-alive: a quiet stream says so within a second."""
    yield from start_api(settings, tmp_path_factory.mktemp("api-owner-events") / "gunicorn.log",
                         TRAINRX_EVENTS_KEEPALIVE_S="1")


def new_owner(settings) -> tuple[str, dict]:
    owner, token = f"owner-events-{uuid.uuid4().hex[:8]}", new_token()
    engine = make_engine(settings.database_url)
    TokenStore(engine).create(owner, USER, label="owner events", token=token)
    engine.dispose()
    return owner, {"Authorization": f"Bearer {token}"}


def read_events(api: str, headers: dict, *, until=None, cursor: str | None = None, timeout: float = 180):
    """(id, type, data) of the stream's events, until ``until(events)`` holds, or (when None) until the first
    keep-alive: the stream has sent everything it had."""
    import json

    events, fields = [], {}
    sent = dict(headers, **({"Last-Event-ID": cursor} if cursor else {}))
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{api}/v1/events", headers=sent, timeout=30) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            assert time.monotonic() < deadline, f"the stream did not say enough in time: {events}"
            if line.startswith(":"):
                if until is None and "keep-alive" in line:
                    return events
            elif line == "":
                if "event" in fields:
                    events.append((fields["id"], fields["event"], json.loads(fields["data"])))
                    if until is not None and until(events):
                        return events
                fields = {}
            else:
                key, _, value = line.partition(": ")
                fields[key] = value
    raise AssertionError(f"the stream ended early: {events}")


def test_one_stream_follows_all_the_owners_jobs_and_resumes_without_gaps_or_repeats(api, settings, worker):
    _, mine = new_owner(settings)
    _, theirs = new_owner(settings)
    waiting = httpx.post(f"{api}/v1/jobs", json=WAITING, headers=mine).json()  # stays queued: no gpu worker
    httpx.post(f"{api}/v1/jobs", json=WAITING, headers=theirs).raise_for_status()

    start = read_events(api, mine)  # without a cursor: what is in flight
    assert [(kind, data["job_id"], data["status"]) for _, kind, data in start] == [("job", waiting["id"], "queued")]

    tiny = httpx.post(f"{api}/v1/jobs", json=TINY, headers=mine).json()

    def finished(events):
        return any(d["job_id"] == tiny["id"] and d["status"] == "succeeded" for _, _, d in events)

    live = read_events(api, mine, cursor=start[-1][0], until=finished)
    cards = [(event_id, data) for event_id, kind, data in live if kind == "job"]
    assert {data["job_id"] for _, data in cards} == {tiny["id"]}  # not the other owner's, not the unchanged one
    ids = [data["event_id"] for _, data in cards]
    assert ids == sorted(set(ids)), "a job's cards only move forward"
    last = cards[-1][1]
    assert last["progress"] == {"epoch": TINY["epochs"], "epochs": TINY["epochs"]}
    assert last["metric"]["name"] == "val_accuracy" and 0 <= last["metric"]["value"] <= 1
    assert last["verdict"] in ("healthy", "training_problem", "overfitting")

    # The card's event id is the id of the job's last event (`end`) on its own stream.
    own = httpx.get(f"{api}/v1/jobs/{tiny['id']}/events", headers=mine, timeout=30).text
    assert own.rstrip().split("\n\n")[-1].startswith(f"id: {last['event_id']}\nevent: end")

    # Resuming after the first card: only the newest state of what changed since, once.
    resumed = read_events(api, mine, cursor=cards[0][0])
    if len(cards) > 1:
        assert [(kind, data) for _, kind, data in resumed] == [("job", last)]
    else:
        assert resumed == []
    assert read_events(api, mine, cursor=cards[-1][0]) == []  # nothing new: nothing sent

    assert httpx.delete(f"{api}/v1/jobs/{tiny['id']}", headers=mine).status_code == 204
    gone = read_events(api, mine, cursor=cards[-1][0])
    assert [(kind, data) for _, kind, data in gone] == [("deleted", {"job_id": tiny["id"]})]


def test_a_cursor_time_out_of_range_is_a_400_before_the_stream_starts(client):
    """A 15-digit time used to pass the check and break the stream after its 200."""
    resp = client.get("/v1/events", query_string={"last_event_id": "9" * 15})
    assert resp.status_code == 400 and "Last-Event-ID" in resp.get_json()["message"]
    soon = int((time.time() + 60) * 1000)  # a client clock a little ahead is still a cursor
    assert Cursor.decode(str(soon)).at_ms == soon


def test_a_cursor_the_stream_did_not_send_is_a_400_naming_it(api, settings):
    _, mine = new_owner(settings)
    resp = httpx.get(f"{api}/v1/events", params={"last_event_id": "yesterday"}, headers=mine, timeout=30)
    assert resp.status_code == 400 and "Last-Event-ID" in resp.json()["message"]
    assert httpx.get(f"{api}/v1/events", timeout=30).status_code == 401
