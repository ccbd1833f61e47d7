"""Verified remedies end to end: a real unhealthy job asks for auto_remedy, its worker opens the
remedy, real workers train the children, judge them and name the best verified fix; the POST's
answers and refusals; a remedy the recovery sweep moves on when no worker saw its child end."""

from __future__ import annotations

import time

import pytest
import redis
from sqlalchemy import update

from core.db import jobs, make_engine
from core.jobstore import JobStore, utcnow
from core.queueing import make_celery
from core.redis_urls import redis_py_url
from core.remedy_outcome import candidate_patches, is_fixed, outcome
from core.spec import normalise
from tests.conftest import OWNER, authed_client, run_job, submit, wait_for

# digits with plain SGD at a learning rate far too small: three epochs leave it near chance.
UNHEALTHY = {"name": "remedies-parent", "dataset": {"name": "digits"}, "architecture": {"hidden_layers": [32]},
             "optimizer": {"name": "sgd", "learning_rate": 1e-5}, "epochs": 3, "seed": 0}


def wait_remedy(client, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        remedy = client.get(f"/v1/jobs/{job_id}/remedies").get_json()
        if remedy.get("status") == "done":
            return remedy
        assert time.monotonic() < deadline, remedy
        time.sleep(0.2)


@pytest.fixture(scope="module")
def remedied(app, worker) -> tuple[dict, dict]:
    """One unhealthy parent that asked for auto_remedy, and its remedy once settled: the worker opens
    it by itself when the job ends (the POST's own answers are checked on parents made in the database,
    below)."""
    client = authed_client(app)
    parent = run_job(client, {**UNHEALTHY, "auto_remedy": {"max_attempts": 3}})
    assert parent["status"] == "succeeded", parent
    deadline = time.monotonic() + 60
    while "remedies" not in parent["links"]:  # the worker opens it just after the job ends
        assert time.monotonic() < deadline, parent
        time.sleep(0.2)
        parent = client.get(f"/v1/jobs/{parent['id']}").get_json()
    assert parent["links"]["remedies"] == f"/v1/jobs/{parent['id']}/remedies"
    return parent, wait_remedy(client, parent["id"])


def test_auto_remedy_tries_the_diagnosis_patches_in_order_and_names_the_best_verified_fix(client, remedied):
    parent, remedy = remedied
    assert parent["request"]["auto_remedy"] == {"max_attempts": 3}
    diagnosis = client.get(f"/v1/jobs/{parent['id']}/diagnosis").get_json()
    assert diagnosis["verdict"] == "training_problem"
    assert remedy["job_id"] == parent["id"] and remedy["max_attempts"] == 3
    assert [a["patch"] for a in remedy["attempts"]] == [c["patch"] for c in candidate_patches(diagnosis, limit=3)]
    before = outcome(parent["summary"], diagnosis)
    for attempt in remedy["attempts"]:
        assert attempt["before"] == pytest.approx(before)
        if attempt["status"] in ("skipped", "invalid"):
            continue
        child = wait_for(client, attempt["job_id"])
        assert child["links"]["parent"] == f"/v1/jobs/{parent['id']}"
        assert child["request"]["auto_remedy"] is None and "remedies" not in child["links"]  # never inherited
        if attempt["status"] == "succeeded":
            child_diagnosis = client.get(f"/v1/jobs/{child['id']}/diagnosis").get_json()
            assert attempt["after"] == pytest.approx(outcome(child["summary"], child_diagnosis))
            assert attempt["fixed"] == is_fixed(before, attempt["after"])
    fixed = [a for a in remedy["attempts"] if a["fixed"]]
    assert fixed, remedy
    assert remedy["best"]["job_id"] in [a["job_id"] for a in fixed]
    best_child = client.get(f"/v1/jobs/{remedy['best']['job_id']}").get_json()
    assert remedy["best"]["request"] == best_child["request"]
    assert remedy["finished_at"] is not None


def test_a_repeated_post_answers_the_existing_remedy(client, remedied):
    parent, remedy = remedied
    again = client.post(f"/v1/jobs/{parent['id']}/remedies", json={"max_attempts": 1})
    assert again.status_code == 200 and again.get_json()["id"] == remedy["id"]
    assert again.get_json()["max_attempts"] == 3


def test_another_owner_sees_no_remedy(other_client, remedied):
    parent, _ = remedied
    assert other_client.get(f"/v1/jobs/{parent['id']}/remedies").status_code == 404
    assert other_client.post(f"/v1/jobs/{parent['id']}/remedies", json={}).status_code == 404


# --- parents made directly in the database: the service's answers need no training here ---------

SUGGESTED = [{"targets": {"train_accuracy": 0.05}}, {"diagnose": False},
             {"optimizer": {"name": "adam", "momentum": 0.9}},  # adam has no momentum: an invalid request
             {"epochs": 2}, {"epochs": 3}]
SUMMARY = {"train_loss": 2.3, "val_loss": 2.3, "train_accuracy": 0.1, "val_accuracy": 0.1, "returned_epoch": 1}


def diagnosed(verdict: str | None, patches: list[dict]) -> dict:
    return {"verdict": verdict, "findings": [{"code": "poor_training_fit", "severity": "error", "suggestions": [
        {"patch": p, "why": "w"} for p in patches]}]}


def stored_parent(settings, request: dict, *, diagnosis: dict | None, queue: str = "cpu") -> str:
    """A finished job of OWNER with the given diagnosis, written straight to the database."""
    engine = make_engine(settings.database_url)
    store = JobStore(engine)
    job, _ = store.create(normalise(request, limits=settings.limits, resolver=None), queue, owner=OWNER)
    with engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job["id"]).values(
            status="succeeded", finished_at=utcnow(), summary=SUMMARY, diagnosis=diagnosis))
    engine.dispose()
    return job["id"]


# Jobs that ask for CUDA wait on the gpu queue, which no test worker serves: they stay queued.
WAITING = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1, "device": "cuda"}


def test_jobs_that_cannot_be_remedied_are_refused_naming_why(client, settings):
    queued = submit(client, WAITING)
    resp = client.post(f"/v1/jobs/{queued['id']}/remedies", json={})
    assert resp.status_code == 409 and "queued" in resp.get_json()["message"]
    client.post(f"/v1/jobs/{queued['id']}/cancel")
    cases = {
        "healthy": stored_parent(settings, WAITING, diagnosis=diagnosed("healthy", [{"epochs": 2}])),
        "diagnose: false": stored_parent(settings, {**WAITING, "diagnose": False},
                                         diagnosis=diagnosed("training_problem", [{"epochs": 2}])),
        "no diagnosis verdict": stored_parent(settings, WAITING, diagnosis=None),
        "no patch": stored_parent(settings, WAITING, diagnosis=diagnosed("training_problem", SUGGESTED[:2])),
    }
    for why, job_id in cases.items():
        resp = client.post(f"/v1/jobs/{job_id}/remedies", json={})
        assert resp.status_code == 409 and why in resp.get_json()["message"], (why, resp.get_json())
        assert client.get(f"/v1/jobs/{job_id}/remedies").status_code == 404
    for body in ({"max_attempts": 6}, {"parallel": 1000}, {"parallel": 0}, {"stop_when_fixed": "yes"},
                 {"max_attempts": True}, {"x": 1}):
        assert client.post(f"/v1/jobs/{cases['healthy']}/remedies", json=body).status_code == 422, body


def test_the_recovery_sweep_moves_on_a_remedy_whose_child_was_cancelled_while_queued(client, settings):
    """The children wait on the gpu queue (no worker serves it here), so no worker ever sees them end:
    only the sweep can judge them and start the next attempt."""
    from workers.recovery import RecoverySweep

    parent = stored_parent(settings, WAITING, diagnosis=diagnosed("training_problem", SUGGESTED), queue="gpu")
    resp = client.post(f"/v1/jobs/{parent}/remedies", json={"max_attempts": 3, "parallel": 1})
    assert resp.status_code == 202, resp.get_json()
    assert resp.headers["Location"] == f"/v1/jobs/{parent}/remedies"
    assert resp.get_json()["status"] == "running" and resp.get_json()["job_id"] == parent
    assert client.get(f"/v1/jobs/{parent}").get_json()["links"]["remedies"] == resp.headers["Location"]
    attempts = resp.get_json()["attempts"]
    # targets and diagnose are never tried; the invalid patch is recorded, not tried, and names its field
    assert [a["patch"] for a in attempts] == SUGGESTED[2:]
    assert attempts[0]["status"] == "invalid" and "optimizer" in attempts[0]["error"]["errors"]
    assert [a["status"] for a in attempts[1:]] == ["queued", "pending"]
    first = client.get(f"/v1/jobs/{attempts[1]['job_id']}").get_json()
    assert first["queue"] == "gpu" and first["request"]["epochs"] == 2

    engine = make_engine(settings.database_url)
    sweep = RecoverySweep(settings, JobStore(engine), redis.Redis.from_url(redis_py_url(settings.redis_url)),
                          make_celery(settings))
    try:
        for attempt in attempts[1:]:
            job_id = client.get(f"/v1/jobs/{parent}/remedies").get_json()["attempts"][attempts.index(attempt)][
                "job_id"]
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
            sweep.once()
        remedy = client.get(f"/v1/jobs/{parent}/remedies").get_json()
    finally:
        engine.dispose()
    assert remedy["status"] == "done", remedy
    assert [a["status"] for a in remedy["attempts"]] == ["invalid", "cancelled", "cancelled"]
    assert [a["fixed"] for a in remedy["attempts"]] == [None, None, None] and remedy["best"] is None
