"""Live event ids derived from the job's state (core/events.py): increasing, the same
whether replayed or heard live, and never repeating an epoch trained again after a resume."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from core.db import jobs
from core.events import EVENT_ID_STRIDE, replay
from core.jobstore import utcnow

REQUEST = {"epochs": 5, "dataset": {"name": "moons"}}


def ids(store, job_id, after=-1):
    return [(e.id, e.type, e.data.get("status") or e.data.get("epoch")) for e in replay(store, job_id, after)[1]]


def test_ids_increase_across_a_lost_worker_and_a_resume(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    assert ids(store, job["id"]) == [(0, "status", "queued")]
    store.start(job["id"], "w1")
    for epoch in (1, 2, 3):
        store.record_epoch(job["id"], 1, {"epoch": epoch}, None)
    seen = ids(store, job["id"])
    assert seen == [(1, "status", "running"), (EVENT_ID_STRIDE, "epoch", 1), (2 * EVENT_ID_STRIDE, "epoch", 2),
                    (3 * EVENT_ID_STRIDE, "epoch", 3)]
    with store.engine.begin() as conn:
        conn.execute(update(jobs).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    store.reap(grace_s=60)
    store.start(job["id"], "w2")
    store.rewind(job["id"], 2, 2)  # resumes from the checkpoint after epoch 2: epoch 3 is trained again
    store.record_epoch(job["id"], 2, {"epoch": 3}, None)
    store.record_epoch(job["id"], 2, {"epoch": 4}, None)
    store.finish(job["id"], 2, "succeeded")
    after_epoch_3 = ids(store, job["id"], after=seen[-1][0])
    assert [(kind, what) for _, kind, what in after_epoch_3] == [("status", "running"), ("epoch", 4),
                                                                ("status", "succeeded")]
    every = [i for i, _, _ in ids(store, job["id"])]
    assert every == sorted(set(every)) and every[-1] < 5 * EVENT_ID_STRIDE


def test_a_requeue_without_progress_still_gets_higher_ids(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    last = -1
    for run in (1, 2, 3):
        store.start(job["id"], f"w{run}")
        current = max(i for i, _, _ in ids(store, job["id"]))
        assert current > last
        store.hand_back(job["id"], run)
        last = max(i for i, _, _ in ids(store, job["id"]))
        assert last > current


def test_cancelling_a_queued_job_is_a_new_event(store):
    job, _ = store.create(REQUEST, "cpu", owner="ann")
    store.request_cancel(job["id"], owner="ann")
    assert ids(store, job["id"], after=0) == [(1, "status", "cancelled")]
