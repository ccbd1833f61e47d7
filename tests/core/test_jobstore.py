"""JobStore on an in-memory SQLite: transitions, ownership, idempotency per owner, cursors.
Milliseconds each; the end-to-end tests cover the same store under real workers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from core.db import datasets, jobs
from core.job_runs import Beat
from core.jobstore import (CANCELLED, FAILED, IDEMPOTENCY_TTL, QUEUED, RUNNING, SUCCEEDED, IdempotencyConflict,
                           InvalidCursor, Superseded, UploadGone, utcnow)
from core.storage import LocalStorage
from core.uploads import DELETED, IN_USE, MISSING, UploadStore

REQUEST = {"name": "x", "epochs": 1, "dataset": {"name": "moons"}}


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
    assert started["status"] == RUNNING and started["run"] == 1 and started["attempts"] == 0
    assert store.start(job["id"], "w2") is None  # a running job is never started twice
    assert store.request_cancel(job["id"], owner="ann") == RUNNING
    assert store.heartbeat(job["id"], 1) == Beat(current=True, cancel_requested=True)
    store.finish(job["id"], 1, CANCELLED)
    with pytest.raises(Superseded):
        store.finish(job["id"], 1, SUCCEEDED)  # already finished
    assert store.request_cancel(job["id"], owner="ann") is None
    assert store.delete_finished(job["id"], owner="ann") and store.get(job["id"], owner=None) is None


def test_every_write_of_a_superseded_run_is_refused(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    store.start(job["id"], "w1")
    store.record_epoch(job["id"], 1, {"epoch": 1, "train_loss": 1.0}, None)
    store.log(job["id"], "run 1 here", run=1)
    old_beat = utcnow() - timedelta(minutes=5)
    with store.engine.begin() as conn:  # the worker of run 1 stops answering
        conn.execute(update(jobs).where(jobs.c.id == job["id"]).values(heartbeat_at=old_beat))
    assert [r.outcome for r in store.reap(grace_s=60)] == ["requeued"]
    second = store.start(job["id"], "w2")
    assert (second["run"], second["attempts"]) == (2, 1)
    assert store.heartbeat(job["id"], 1) == Beat(current=False, cancel_requested=False)
    for write in (lambda: store.record_epoch(job["id"], 1, {"epoch": 2, "train_loss": 9.0}, None),
                  lambda: store.log(job["id"], "run 1 again", run=1),
                  lambda: store.set_data_info(job["id"], 1, {"x": 1}),
                  lambda: store.finish(job["id"], 1, SUCCEEDED),
                  lambda: store.hand_back(job["id"], 1),
                  lambda: store.rewind(job["id"], 1, 0)):
        with pytest.raises(Superseded):
            write()
    assert [e["epoch"] for e in store.epochs(job["id"])] == [1]
    assert [line for _, line in store.logs(job["id"])][-1] != "run 1 again"
    store.record_epoch(job["id"], 2, {"epoch": 2, "train_loss": 0.5}, None)
    store.finish(job["id"], 2, SUCCEEDED)
    assert store.get(job["id"], owner=None)["status"] == SUCCEEDED


def test_the_reaper_gives_one_more_attempt_then_fails_and_honours_a_cancel(store):
    def lose_worker(job_id):
        with store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))

    job, _ = store.create(REQUEST, "cpu", owner="ann")
    store.start(job["id"], "w1")
    store.record_epoch(job["id"], 1, {"epoch": 1, "train_loss": 1.0}, None)
    assert store.reap(grace_s=60) == []  # a fresh heartbeat is left alone
    lose_worker(job["id"])
    assert store.reap(grace_s=60)[0].outcome == "requeued"
    store.start(job["id"], "w2")
    lose_worker(job["id"])
    assert store.reap(grace_s=60)[0].outcome == FAILED
    failed = store.get(job["id"], owner=None)
    assert failed["status"] == FAILED and failed["error"]["type"] == "worker_lost" and failed["attempts"] == 2
    assert [e["epoch"] for e in store.epochs(job["id"])] == [1]  # partial curves kept

    other, _ = store.create(REQUEST, "cpu", owner="ann")
    store.start(other["id"], "w1")
    store.request_cancel(other["id"], owner="ann")
    lose_worker(other["id"])
    assert store.reap(grace_s=60)[0].outcome == CANCELLED
    assert store.get(other["id"], owner=None)["status"] == CANCELLED


def test_a_graceful_hand_back_is_not_a_lost_worker_and_runtime_adds_up(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    store.start(job["id"], "w1")
    store.hand_back(job["id"], 1)
    back = store.get(job["id"], owner=None)
    assert back["status"] == QUEUED and back["attempts"] == 0 and back["runtime_used_s"] >= 0
    assert store.start(job["id"], "w2")["run"] == 2


def test_status_changes_raise_the_event_sequence(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    seqs = [job["status_seq"]]
    store.start(job["id"], "w1")
    store.record_epoch(job["id"], 1, {"epoch": 1}, None)
    store.record_epoch(job["id"], 1, {"epoch": 2}, None)
    seqs.append(store.get(job["id"], owner=None)["status_seq"])
    store.hand_back(job["id"], 1)
    handed = store.get(job["id"], owner=None)
    assert handed["status_high"] == 2 and handed["status_seq"] > seqs[-1] > seqs[0]
    store.start(job["id"], "w2")
    store.rewind(job["id"], 2, 1)  # resumes after epoch 1: epoch 2 is trained again
    rewound = store.get(job["id"], owner=None)
    assert rewound["progress_epoch"] == 1 and rewound["status_high"] == 2
    assert [e["epoch"] for e in store.epochs(job["id"])] == [1]


def test_idempotency_keys_expire_and_a_resubmit_never_returns_its_parent(store):
    parent, _ = store.create(REQUEST, "cpu", owner="ann", idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        store.create(REQUEST, "cpu", owner="ann", idempotency_key="k", parent_id=parent["id"])
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == parent["id"]).values(
            created_at=utcnow() - IDEMPOTENCY_TTL - timedelta(minutes=1)))
    fresh, created = store.create(REQUEST, "cpu", owner="ann", idempotency_key="k")
    assert created and fresh["id"] != parent["id"]


def test_a_queued_job_cannot_be_deleted_and_cancel_is_immediate(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    assert not store.delete_finished(job["id"], owner="ann")
    assert store.request_cancel(job["id"], owner="ann") == QUEUED
    assert store.get(job["id"], owner="ann")["status"] == CANCELLED
    assert store.start(job["id"], "w1") is None  # a late message for a cancelled job does nothing


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


def _upload(store, dataset_id: str = "a" * 32, owner: str = "ann") -> str:
    with store.engine.begin() as conn:
        conn.execute(insert(datasets).values(
            id=dataset_id, owner=owner, format="npz", rows=4, features=2, classes=2, class_counts={},
            feature_ranges=[], upload_bytes=1, stored_bytes=1, created_at=utcnow()))
    return dataset_id


def test_an_upload_in_use_cannot_be_deleted_and_a_deleted_one_takes_no_job(store, tmp_path):
    uploads = UploadStore(store.engine, LocalStorage(tmp_path))
    upload = _upload(store)
    job, _ = store.create({**REQUEST, "dataset": {"id": upload}}, "cpu", owner="ann")
    assert uploads.delete(upload, owner="ann") == IN_USE
    store.request_cancel(job["id"], owner="ann")
    assert uploads.delete(upload, owner="bob") == MISSING
    assert uploads.delete(upload, owner="ann") == DELETED
    with pytest.raises(UploadGone):
        store.create({**REQUEST, "dataset": {"id": upload}}, "cpu", owner="ann")
    assert store.list(owner="ann").items[0]["id"] == job["id"]  # the refused job was not kept


def test_active_upload_uses_name_only_unfinished_jobs(store):
    upload = _upload(store)
    job, _ = store.create({**REQUEST, "dataset": {"id": upload}}, "cpu", owner="ann")
    done, _ = store.create({**REQUEST, "dataset": {"id": upload}}, "cpu", owner="ann")
    store.request_cancel(done["id"], owner="ann")
    assert store.active_upload_uses(upload) == [(job["id"], upload)]
    assert store.active_upload_uses("b" * 32) == []


def test_in_flight_or_since_is_what_can_still_change_for_one_owner(store):
    """The owner-level event stream's window: queued and running jobs, and jobs created or finished since."""
    old_done, _ = store.create(REQUEST, "cpu", owner="ann")
    old_running, _ = store.create(REQUEST, "cpu", owner="ann")
    theirs, _ = store.create(REQUEST, "cpu", owner="bob")
    store.start(old_running["id"], "w1")
    store.request_cancel(old_done["id"], owner="ann")
    long_ago = utcnow() - timedelta(hours=1)
    with store.engine.begin() as conn:
        conn.execute(update(jobs).values(created_at=long_ago))
        conn.execute(update(jobs).where(jobs.c.id == old_done["id"]).values(finished_at=long_ago))
    since = utcnow() - timedelta(minutes=1)
    assert [j["id"] for j in store.in_flight_or_since("ann", since)] == [old_running["id"]]

    new, _ = store.create(REQUEST, "cpu", owner="ann")
    store.request_cancel(new["id"], owner="ann")  # created and finished since
    window = store.in_flight_or_since("ann", since)
    assert [j["id"] for j in window] == [old_running["id"], new["id"]]  # oldest first, never bob's
    assert "steps" not in window[0] and window[1]["status"] == CANCELLED
    assert theirs["id"] not in {j["id"] for j in store.in_flight_or_since("ann", long_ago - timedelta(days=1))}


def test_a_full_owner_window_keeps_the_newest_jobs(store):
    """Past its limit, the owner stream's window drops the oldest jobs, never the newest."""
    made = [store.create({**REQUEST, "epochs": i + 1}, "cpu", owner="cid")[0]["id"] for i in range(5)]
    since = utcnow() - timedelta(minutes=1)
    assert [j["id"] for j in store.in_flight_or_since("cid", since, limit=3)] == made[2:]  # oldest first
    assert [j["id"] for j in store.in_flight_or_since("cid", since, limit=10)] == made

