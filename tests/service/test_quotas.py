"""Per-owner quotas: queued + running jobs, the request rate, upload storage. Each
refusal is a 429 with Retry-After and the standard body, naming its variable.

Each test builds an app with tight quotas and acts as a fresh owner, so that what
the rest of the suite submits or uploads does not count."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.tokens import USER, TokenStore, new_token
from tests.sample_uploads import as_npz, blobs, upload, uploaded
from tests.service.test_api import WAITING, assert_error_shape


def make_app(settings, **quotas):
    from service import create_app

    return create_app({"SETTINGS": replace(settings, quotas=replace(settings.quotas, **quotas))})


def fresh_owner(app, prefix: str = "quota"):
    """A test client for a new owner (its own user token): nothing counts against it yet."""
    owner, token = f"{prefix}-{uuid.uuid4().hex[:8]}", new_token()
    TokenStore(app.extensions["trainrx"].store.engine).create(owner, USER, label="quotas", token=token)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client, owner


STATIC_FILE = next(p.name for p in (Path(__file__).parents[2] / "service" / "static" / "dashboard").iterdir()
                   if p.is_file())


def assert_429(resp, variable: str) -> dict:
    body = assert_error_shape(resp, 429)
    assert variable in body["message"], body["message"]
    assert int(resp.headers["Retry-After"]) >= 1
    return body


# --- queued + running jobs ------------------------------------------------------------------------------------

def test_the_active_jobs_cap_refuses_new_jobs_but_not_replays(settings):
    app = make_app(settings, max_active_jobs_per_owner=2)
    client, owner = fresh_owner(app)
    store = app.extensions["trainrx"].store
    first = client.post("/v1/jobs", json=WAITING, headers={"Idempotency-Key": "first"})
    assert first.status_code == 202
    assert client.post("/v1/jobs", json=WAITING).status_code == 202

    over = client.post("/v1/jobs", json=WAITING)
    assert_429(over, "TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER")
    assert store.count_active(owner) == 2, "the refused job is not kept"
    assert len(client.get("/v1/jobs").get_json()["items"]) == 2
    assert_429(client.post(f"/v1/jobs/{first.get_json()['id']}/resubmit", json={"patch": {}}),
               "TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER")

    replay = client.post("/v1/jobs", json=WAITING, headers={"Idempotency-Key": "first"})
    assert replay.status_code == 200 and replay.get_json()["id"] == first.get_json()["id"]

    other, _ = fresh_owner(app)  # per owner: someone else still submits
    assert other.post("/v1/jobs", json=WAITING).status_code == 202

    assert client.post(f"/v1/jobs/{first.get_json()['id']}/cancel").status_code == 202
    assert client.post("/v1/jobs", json=WAITING).status_code == 202  # a slot came free


# --- request rate ---------------------------------------------------------------------------------------------

def test_the_rate_limit_is_per_owner_and_spares_healthz(settings):
    app = make_app(settings, rate_limit="3/minute")
    client, _ = fresh_owner(app, "rate")
    for _ in range(3):
        assert client.get("/v1/me").status_code == 200
    limited = client.get("/v1/jobs")  # every /v1 operation counts against the same limit
    body = assert_429(limited, "TRAINRX_RATE_LIMIT")
    assert "3 per 1 minute" in body["message"]
    assert int(limited.headers["Retry-After"]) <= 60

    other, _ = fresh_owner(app, "rate")
    assert other.get("/v1/me").status_code == 200
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/openapi.json").status_code == 200
    assert app.test_client().get("/v1/me").status_code == 401  # no credential: 401, never counted as an owner


def test_the_rate_limit_fails_open_when_redis_does_not_answer(settings, caplog):
    """Nothing listens on port 1: requests still answer (counted in memory), never 500."""
    app = make_app(replace(settings, redis_url="redis://127.0.0.1:1/0"), rate_limit="3/minute")
    client, _ = fresh_owner(app, "rate")
    codes = [client.get("/v1/me").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert any("falling back to in-memory" in r.getMessage() for r in caplog.records)


def test_the_rate_limit_is_one_count_in_redis_for_every_api_process(settings):
    """Two apps stand for two gunicorn processes: what one allowed counts against the other."""
    first, second = make_app(settings, rate_limit="3/minute"), make_app(settings, rate_limit="3/minute")
    client, _ = fresh_owner(first, "rate")
    twin = second.test_client()
    twin.environ_base["HTTP_AUTHORIZATION"] = client.environ_base["HTTP_AUTHORIZATION"]
    assert [client.get("/v1/me").status_code, twin.get("/v1/me").status_code, client.get("/v1/me").status_code] \
        == [200, 200, 200]
    assert_429(twin.get("/v1/me"), "TRAINRX_RATE_LIMIT")
    assert_429(client.get("/v1/jobs"), "TRAINRX_RATE_LIMIT")


def test_unmatched_paths_and_static_files_are_not_counted(settings):
    app = make_app(settings, rate_limit="2/minute")
    client, _ = fresh_owner(app, "rate")
    for _ in range(3):
        assert client.get("/v1/no-such-resource").status_code == 404
        assert client.get(f"/static/dashboard/{STATIC_FILE}").status_code == 200
    assert [client.get("/v1/me").status_code for _ in range(3)] == [200, 200, 429]


def test_the_rate_limit_counts_in_redis_again_once_it_answers(settings, tmp_path, caplog):
    """Redis down at the first request: counted in memory; up again: back to the shared count
    at the next look (1 s after the fall-back, then 2, 4, ... s)."""
    import redis
    from core.embedded_redis import EmbeddedRedis

    embedded = EmbeddedRedis(tmp_path / "redis")  # not started: nothing answers on its socket yet
    app = make_app(replace(settings, redis_url=embedded.url), rate_limit="100/minute")
    client, owner = fresh_owner(app, "rate")
    assert client.get("/v1/me").status_code == 200
    assert any("falling back to in-memory" in r.getMessage() for r in caplog.records)
    embedded.start()
    try:
        time.sleep(1.5)  # past the first look again
        assert client.get("/v1/me").status_code == 200
        assert redis.Redis(unix_socket_path=str(embedded.socket)).keys(f"*owner:{owner}*"), "counted in Redis"
    finally:
        embedded.stop()


def test_a_rate_limit_that_does_not_parse_stops_the_app(settings):
    with pytest.raises(ValueError, match="TRAINRX_RATE_LIMIT"):
        make_app(settings, rate_limit="lots")


def test_the_rate_limit_reads_off_and_redis_unix_urls(monkeypatch):
    from core.redis_urls import limits_storage_url
    from core.settings import Quotas

    assert limits_storage_url("unix:///tmp/r.sock?db=0") == "redis+unix:///tmp/r.sock?db=0"
    assert limits_storage_url("redis+socket:///tmp/r.sock") == "redis+unix:///tmp/r.sock"
    assert limits_storage_url("redis://h:6379/15") == "redis://h:6379/15"
    for off in ("off", "", "OFF"):
        monkeypatch.setenv("TRAINRX_RATE_LIMIT", off)
        assert Quotas.from_env().rate_limit is None
    monkeypatch.delenv("TRAINRX_RATE_LIMIT")
    assert Quotas.from_env().rate_limit == Quotas.rate_limit
    monkeypatch.setenv("TRAINRX_MAX_STREAMS", "0")
    with pytest.raises(ValueError, match="TRAINRX_MAX_STREAMS"):
        Quotas.from_env()


# --- upload storage -------------------------------------------------------------------------------------------

def _dataset(rows: int, features: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Stored as float32 features + int64 labels: rows * (4 * features + 8) bytes."""
    x = np.random.default_rng(rows).normal(size=(rows, features)).astype(np.float32)
    return x, np.arange(rows) % 2


def test_the_upload_storage_cap_counts_what_is_stored(settings):
    app = make_app(settings, max_upload_mb_per_owner=1)
    client, owner = fresh_owner(app, "storage")
    first = uploaded(client, as_npz(*_dataset(18_000)))  # 864,000 bytes stored: most of the 1 MiB
    assert first["size_bytes"] > 800_000

    over = upload(client, as_npz(*_dataset(5_000)))  # 240,000 more: refused before it is read
    assert_429(over, "TRAINRX_MAX_UPLOAD_MB_PER_OWNER")
    assert int(over.headers["Retry-After"]) >= 60

    other, _ = fresh_owner(app, "storage")
    assert upload(other, as_npz(*_dataset(5_000))).status_code == 201  # per owner

    assert client.delete(f"/v1/datasets/{first['id']}").status_code == 204
    assert upload(client, as_npz(*_dataset(5_000))).status_code == 201  # room again


def test_a_small_file_that_stores_large_is_refused_after_parsing(settings):
    """A compressed .npz of zeros is a few KB on the wire and 1.6 MB as stored arrays."""
    app = make_app(settings, max_upload_mb_per_owner=1)
    client, owner = fresh_owner(app, "storage")
    x, y = np.zeros((40_000, 10), dtype=np.float32), np.arange(40_000) % 2
    x[:, 0] = y  # not constant
    data = as_npz(x, y, compressed=True)
    assert len(data) < 200_000
    assert_429(upload(client, data), "TRAINRX_MAX_UPLOAD_MB_PER_OWNER")
    from service.datasets_api import UploadStore

    store = UploadStore(app.extensions["trainrx"].store.engine, app.extensions["trainrx"].storage)
    assert store.bytes_used(owner) == 0, "nothing of the refused upload is kept"
    assert uploaded(client, as_npz(*blobs()))["rows"] == 180


# --- open event streams ---------------------------------------------------------------------------------------

def test_streams_over_the_owner_or_process_cap_are_429_at_once(settings):
    """Streams opened and not read (the test client does not iterate them) hold their slots until closed
    (last opened, first closed: each holds a request context in this one thread)."""
    app = make_app(settings, max_streams_per_owner=2, max_streams=3)
    client, _ = fresh_owner(app, "streams")
    job = client.post("/v1/jobs", json=WAITING).get_json()
    url = f"/v1/jobs/{job['id']}/events"
    first, second = client.get(url, buffered=False), client.get(url, buffered=False)
    assert (first.status_code, second.status_code) == (200, 200)
    assert_429(client.get(url), "TRAINRX_MAX_STREAMS_PER_OWNER")
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200  # everything else still answers
    second.close()
    third = client.get(url, buffered=False)
    assert third.status_code == 200

    other, _ = fresh_owner(app, "streams")
    theirs = other.post("/v1/jobs", json=WAITING).get_json()
    held = other.get(f"/v1/jobs/{theirs['id']}/events", buffered=False)
    assert held.status_code == 200  # this process now holds 3
    assert_429(other.get(f"/v1/jobs/{theirs['id']}/events"), "TRAINRX_MAX_STREAMS")
    for resp in (held, third, first):
        resp.close()
    assert app.extensions["trainrx_streams"].slots.open_here == 0


def test_a_slot_left_by_a_crashed_process_expires_with_its_lease(settings):
    """A slot is a lease in the owner's sorted set; one whose lease ran out no longer counts."""
    import time

    from service.stream_slots import KEY_PREFIX

    app = make_app(settings, max_streams_per_owner=1)
    client, owner = fresh_owner(app, "streams")
    app.extensions["trainrx"].redis.zadd(KEY_PREFIX + owner, {"crashed-process-stream": time.time() - 1})
    job = client.post("/v1/jobs", json=WAITING).get_json()
    resp = client.get(f"/v1/jobs/{job['id']}/events", buffered=False)
    assert resp.status_code == 200
    resp.close()
