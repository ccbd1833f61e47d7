"""Verified remedies' bookkeeping on an in-memory SQLite with a real Redis broker: advancers that
race make one child per attempt and one write per state, a full quota makes the remedy wait, a
fix stops the siblings and names the best attempt. Milliseconds each, no training; the end-to-end
tests (tests/e2e/test_remedies.py) run the same code under real workers."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import update

from core.db import jobs
from core.jobstore import utcnow
from core.queueing import make_celery
from core.redis_urls import redis_py_url
from core.remedies import RemedyContext, _decide, advance, advance_all, best_attempt, open_remedy
from core.remedy_store import RemedyStore
from core.settings import Limits
from core.spec import normalise

QUEUE = "remedy-unit"  # no worker serves it; its messages are removed after each test
REQUEST = normalise({"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1},
                    limits=Limits(), resolver=None)
POOR = {"train_loss": 0.7, "val_loss": 0.7, "train_accuracy": 0.5, "val_accuracy": 0.5, "returned_epoch": 1}
GOOD = {"train_loss": 0.1, "val_loss": 0.2, "train_accuracy": 0.95, "val_accuracy": 0.9, "returned_epoch": 1}
PATCHES = [{"epochs": 2}, {"epochs": 3}, {"epochs": 4}]


def diagnosis(verdict: str, patches: list[dict] = ()) -> dict:
    return {"verdict": verdict, "findings": [{"code": "poor_training_fit", "suggestions": [
        {"patch": p, "why": "w"} for p in patches]}]}


@pytest.fixture()
def published() -> list[dict]:
    """The status events the remedy published (for the children it cancelled)."""
    return []


@pytest.fixture()
def ctx(store, settings, published):
    client = redis.Redis.from_url(redis_py_url(settings.redis_url))
    yield RemedyContext(store=store, remedies=RemedyStore(store.engine), celery=make_celery(settings),
                        limits=Limits(), max_active_jobs=100, default_parallel=2,
                        resolver_for=lambda owner: None, publish_status=published.append)
    for key in client.keys(f"{QUEUE}*"):
        client.delete(key)


def finished(store, request: dict, summary: dict, diag: dict, owner: str = "ann", status: str = "succeeded") -> dict:
    job, _ = store.create(request, QUEUE, owner=owner)
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job["id"]).values(
            status=status, summary=summary, diagnosis=diag, finished_at=utcnow()))
    return store.get(job["id"], owner=None)


def test_racing_advancers_make_one_child_per_attempt_and_one_of_them_writes(ctx, store):
    parent = finished(store, REQUEST, POOR, diagnosis("training_problem", PATCHES))
    attempts = [{"patch": p, "request": {**REQUEST, **p}, "job_id": None, "status": "pending", "fixed": None,
                 "after": None} for p in PATCHES]
    remedy, _ = ctx.remedies.create(parent, max_attempts=3, options={"parallel": 2, "stop_when_fixed": True},
                                    before={"verdict": "training_problem", **POOR}, attempts=attempts)
    first, second = _decide(ctx, remedy), _decide(ctx, remedy)  # both read the same state
    assert [a["job_id"] for a in first[0]["attempts"]] == [a["job_id"] for a in second[0]["attempts"]]
    assert ctx.remedies.update_if(remedy["id"], remedy["seq"], **first[0])
    assert not ctx.remedies.update_if(remedy["id"], remedy["seq"], **second[0])
    children = store.remedy_children(remedy["id"])
    assert len(children) == 2 and all(c["parent_id"] == parent["id"] for c in children.values())
    assert advance(ctx, remedy["id"]) is False  # nothing ended: nothing to change, nothing started
    assert len(store.remedy_children(remedy["id"])) == 2


def test_a_full_quota_makes_the_remedy_wait_instead_of_failing(ctx, store):
    ctx.max_active_jobs = 1
    blocker, _ = store.create(REQUEST, QUEUE, owner="ann")
    parent = finished(store, REQUEST, POOR, diagnosis("training_problem", PATCHES))
    remedy, created = open_remedy(ctx, parent, max_attempts=2, parallel=2)
    assert created and [a["status"] for a in remedy["attempts"]] == ["pending", "pending"]
    store.request_cancel(blocker["id"], owner=None)
    assert advance(ctx, remedy["id"])
    assert [a["status"] for a in ctx.remedies.get(remedy["id"])["attempts"]] == ["started", "pending"]


def test_a_fix_cancels_the_siblings_skips_the_rest_and_names_the_best(ctx, store, published):
    parent = finished(store, REQUEST, POOR, diagnosis("training_problem", PATCHES))
    remedy, _ = open_remedy(ctx, parent, max_attempts=3, parallel=2)
    first, second = (a["job_id"] for a in remedy["attempts"][:2])
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == second).values(
            status="succeeded", summary=GOOD, diagnosis=diagnosis("healthy"), finished_at=utcnow()))
    assert advance(ctx, remedy["id"])
    done = ctx.remedies.get(remedy["id"])
    assert done["status"] == "done" and done["finished_at"] is not None
    assert [a["status"] for a in done["attempts"]] == ["cancelled", "succeeded", "skipped"]
    assert [a["fixed"] for a in done["attempts"]] == [None, True, None]
    assert store.get(first, owner=None)["status"] == "cancelled" and [j["id"] for j in published] == [first]
    assert done["best"] == {"job_id": second, "patch": PATCHES[1], "request": store.get(second, owner=None)["request"]}
    assert advance(ctx, remedy["id"]) is False  # done stays done
    assert store.delete_finished(parent["id"], owner=None)  # its remedy goes with it; the children stay
    assert ctx.remedies.get(remedy["id"]) is None and store.get(second, owner=None) is not None


def test_a_child_that_did_not_fix_it_is_judged_and_the_next_attempt_starts(ctx, store):
    parent = finished(store, REQUEST, POOR, diagnosis("training_problem", PATCHES))
    remedy, _ = open_remedy(ctx, parent, max_attempts=2, parallel=1)
    child = remedy["attempts"][0]["job_id"]
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == child).values(
            status="succeeded", summary=POOR, diagnosis=diagnosis("training_problem"), finished_at=utcnow()))
    assert advance(ctx, remedy["id"])
    moved = ctx.remedies.get(remedy["id"])
    assert [(a["status"], a["fixed"]) for a in moved["attempts"]] == [("succeeded", False), ("started", None)]
    assert moved["status"] == "running" and moved["best"] is None


def test_without_stop_when_fixed_every_attempt_runs_and_the_remedy_is_done_once_all_are_judged(ctx, store):
    parent = finished(store, REQUEST, POOR, diagnosis("training_problem", PATCHES))
    remedy, _ = open_remedy(ctx, parent, max_attempts=2, parallel=1, stop_when_fixed=False)
    for verdict, summary in (("healthy", GOOD), ("training_problem", POOR)):
        child = next(a["job_id"] for a in ctx.remedies.get(remedy["id"])["attempts"] if a["status"] == "started")
        with store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == child).values(
                status="succeeded", summary=summary, diagnosis=diagnosis(verdict), finished_at=utcnow()))
        assert advance(ctx, remedy["id"])
    done = ctx.remedies.get(remedy["id"])
    assert done["status"] == "done" and [a["fixed"] for a in done["attempts"]] == [True, False]
    assert done["best"]["job_id"] == done["attempts"][0]["job_id"]


def test_the_sweep_opens_an_auto_remedy_whose_worker_ended_before_it_could_and_decides_each_once(ctx, store):
    asked = {**REQUEST, "auto_remedy": {"max_attempts": 2}}
    unhealthy = finished(store, asked, POOR, diagnosis("training_problem", PATCHES))
    healthy = finished(store, asked, GOOD, diagnosis("healthy", PATCHES))
    plain = finished(store, REQUEST, POOR, diagnosis("training_problem", PATCHES))
    assert {j["id"] for j in store.auto_remedies_due()} == {unhealthy["id"], healthy["id"]}
    assert advance_all(ctx) == 1
    remedy = ctx.remedies.for_job(unhealthy["id"], owner=None)
    assert remedy["max_attempts"] == 2 and [a["status"] for a in remedy["attempts"]] == ["started", "started"]
    assert all(c["request"]["auto_remedy"] is None for c in store.remedy_children(remedy["id"]).values())
    assert ctx.remedies.for_job(healthy["id"], owner=None) is None
    assert ctx.remedies.for_job(plain["id"], owner=None) is None
    assert store.auto_remedies_due() == []  # the healthy job's refusal is final, not retried every sweep
    assert store.get(unhealthy["id"], owner=None)["own_remedy_id"] == remedy["id"]


def test_a_remedy_whose_every_patch_is_invalid_is_done_at_once(ctx, store):
    parent = finished(store, REQUEST, POOR, diagnosis("training_problem", [{"epochs": 0}, {"batch_size": 0}]))
    remedy, created = open_remedy(ctx, parent, max_attempts=3, parallel=2)
    assert created and remedy["status"] == "done" and remedy["best"] is None
    assert [(a["status"], list(a["error"]["errors"])) for a in remedy["attempts"]] == [
        ("invalid", ["epochs"]), ("invalid", ["batch_size"])]
    assert store.remedy_children(remedy["id"]) == {}


def test_the_best_is_the_fixed_attempt_with_the_best_target_metric_ties_the_earliest():
    before = {"verdict": "training_problem", "train_accuracy": 0.1}
    attempts = [{"fixed": False, "after": {"train_accuracy": 0.99}, "job_id": "a", "patch": {"epochs": 1}},
                {"fixed": True, "after": {"train_accuracy": 0.8}, "job_id": "b", "patch": {"epochs": 2}},
                {"fixed": True, "after": {"train_accuracy": 0.9}, "job_id": "c", "patch": {"epochs": 3}},
                {"fixed": True, "after": {"train_accuracy": 0.9}, "job_id": "d", "patch": {"epochs": 4}}]
    assert best_attempt(before, attempts, {"c": {"request": {"r": 1}}}) == {"job_id": "c", "patch": {"epochs": 3},
                                                                          "request": {"r": 1}}
    overfit = {"verdict": "overfitting", "val_accuracy": 0.8}
    by_loss = [{"fixed": True, "after": {"val_loss": 0.5}, "job_id": "a", "patch": {}, "request": {}},
               {"fixed": True, "after": {"val_loss": 0.3}, "job_id": "b", "patch": {}, "request": {}}]
    assert best_attempt(overfit, by_loss, {})["job_id"] == "b"
    assert best_attempt(before, attempts[:1], {}) is None
