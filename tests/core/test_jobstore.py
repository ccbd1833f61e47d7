"""JobStore on an in-memory SQLite: transitions, ownership, idempotency per owner, cursors.
Milliseconds each; the end-to-end tests cover the same store under real workers."""

from __future__ import annotations

import pytest

from core import migrate
from core.db import make_engine
from core.jobstore import (CANCELLED, QUEUED, RUNNING, SUCCEEDED, IdempotencyConflict, InvalidCursor,
                           JobStore)

REQUEST = {"name": "x", "epochs": 1, "dataset": {"name": "moons"}}


@pytest.fixture()
def store():
    engine = make_engine("sqlite://")
    migrate.upgrade(engine)
    yield JobStore(engine)
    engine.dispose()


def test_a_job_belongs_to_its_owner(store):
    job, created = store.create(REQUEST, "cpu", owner="ann")
    assert created and job["owner"] == "ann" and job["status"] == QUEUED
    assert store.get(job["id"], owner="ann")["id"] == job["id"]
    assert store.get(job["id"], owner="bob") is None
    assert store.get(job["id"], owner=None) is not None
    assert store.request_cancel(job["id"], owner="bob") is None
    assert store.get(job["id"], owner=None)["status"] == QUEUED
    assert store.delete_finished(job["id"], owner="bob") is False


def test_idempotency_keys_are_scoped_per_owner(store):
    first, created = store.create(REQUEST, "cpu", owner="ann", idempotency_key="k")
    again, created_again = store.create(REQUEST, "cpu", owner="ann", idempotency_key="k")
    assert created and not created_again and again["id"] == first["id"]
    theirs, created = store.create({**REQUEST, "epochs": 2}, "cpu", owner="bob", idempotency_key="k")
    assert created and theirs["id"] != first["id"]
    with pytest.raises(IdempotencyConflict):
        store.create({**REQUEST, "epochs": 3}, "cpu", owner="ann", idempotency_key="k")


def test_status_transitions_are_conditional(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    started = store.start(job["id"], "w1")
    assert started["status"] == RUNNING and started["attempts"] == 1
    assert store.start(job["id"], "w2") is None  # a live running job is not taken over
    assert store.request_cancel(job["id"], owner="ann") == RUNNING
    assert store.heartbeat(job["id"]) is True
    assert store.finish(job["id"], CANCELLED)
    assert not store.finish(job["id"], SUCCEEDED)  # already finished
    assert store.request_cancel(job["id"], owner="ann") is None
    assert store.delete_finished(job["id"], owner="ann") and store.get(job["id"], owner=None) is None


def test_a_queued_job_cannot_be_deleted_and_cancel_is_immediate(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    assert not store.delete_finished(job["id"], owner="ann")
    assert store.request_cancel(job["id"], owner="ann") == QUEUED
    assert store.get(job["id"], owner="ann")["status"] == CANCELLED
    assert store.start(job["id"], "w1") is None


def test_listing_pages_through_one_owner_newest_first(store):
    ids = [store.create({**REQUEST, "epochs": i + 1}, "cpu", owner="ann")[0]["id"] for i in range(5)]
    store.create(REQUEST, "cpu", owner="bob")
    seen, cursor = [], None
    while True:
        page = store.list(owner="ann", limit=2, cursor=cursor)
        seen += [j["id"] for j in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[::-1]
    assert len(store.list(owner=None, limit=100).items) == 6
    assert store.count_active("ann") == 5 and store.count_active("carol") == 0
    with pytest.raises(InvalidCursor):
        store.list(owner="ann", cursor="not-a-cursor")


def test_active_upload_uses_name_only_unfinished_jobs(store):
    upload = "a" * 32
    job, _ = store.create({**REQUEST, "dataset": {"id": upload}}, "cpu", owner="ann")
    done, _ = store.create({**REQUEST, "dataset": {"id": upload}}, "cpu", owner="ann")
    store.request_cancel(done["id"], owner="ann")
    assert store.active_upload_uses(upload) == [(job["id"], upload)]
    assert store.active_upload_uses("b" * 32) == []
