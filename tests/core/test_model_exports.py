"""The export's claim and fence (core/model_exports.py): one task at a time holds an export,
a lost one's claim can be retaken, and only the newest attempt's final write lands."""

from __future__ import annotations

from datetime import timedelta

from core.artifacts import MODEL_KEY, WEIGHTS_FILE, WEIGHTS_KEY
from core.db import make_engine
from core.job_status import utcnow
from core.jobstore import SUCCEEDED, JobStore
from core.model_exports import MODEL_FAILED, MODEL_PENDING, MODEL_READY
from core.spec import normalise
# Its own owner: these rows name files that do not exist and must not show in other tests' listings.
OWNER = "model-exports-store-test"

REQUEST = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1}


def finished_with_weights(store: JobStore, settings) -> str:
    job, _ = store.create(normalise(REQUEST, limits=settings.limits, resolver=None), "cpu", owner=OWNER)
    run = store.start(job["id"], "test@host")["run"]
    store.finish(job["id"], run, SUCCEEDED, artifacts={WEIGHTS_KEY: WEIGHTS_FILE}, model_status=MODEL_PENDING)
    return job["id"]


def test_one_task_holds_an_export_and_only_the_newest_attempt_writes(settings):
    store = JobStore(make_engine(settings.database_url))
    job_id = finished_with_weights(store, settings)
    assert [p.job_id for p in store.pending_exports() if p.job_id == job_id] == [job_id]

    now = utcnow()
    first = store.claim_export(job_id, stale_before=now - timedelta(seconds=60))
    assert first is not None and first.attempt == 1
    assert store.claim_export(job_id, stale_before=now - timedelta(seconds=60)) is None  # held, not stale
    # The first task went quiet: a later one takes the export over (its claim counts as stale now).
    second = store.claim_export(job_id, stale_before=utcnow() + timedelta(seconds=1))
    assert second is not None and second.attempt == 2

    assert not store.finish_export(first, MODEL_READY, saved={MODEL_KEY: {"file": "old"}})  # overtaken
    assert store.finish_export(second, MODEL_READY, saved={MODEL_KEY: {"file": "model.pt2"}})
    job = store.get(job_id, owner=None)
    assert job["model_status"] == MODEL_READY and job["status"] == SUCCEEDED
    assert job["artifacts"] == {WEIGHTS_KEY: WEIGHTS_FILE, MODEL_KEY: {"file": "model.pt2"}}
    assert store.claim_export(job_id, stale_before=utcnow() + timedelta(seconds=1)) is None  # done: no more claims
    assert not store.fail_export(job_id, 2, "too late")
    store.engine.dispose()


def test_a_released_claim_is_taken_again_and_a_failure_is_fenced_too(settings):
    store = JobStore(make_engine(settings.database_url))
    job_id = finished_with_weights(store, settings)
    claim = store.claim_export(job_id, stale_before=utcnow())
    assert not store.release_export(job_id, claim.attempt + 1)  # another attempt's number: refused
    assert store.release_export(job_id, claim.attempt)
    assert store.get(job_id, owner=None)["model_claimed_at"] is None
    again = store.claim_export(job_id, stale_before=utcnow() - timedelta(days=1))
    assert again is not None and again.attempt == 2
    assert not store.fail_export(job_id, 1, "an older attempt")
    assert store.fail_export(job_id, 2, "the worker was lost")
    job = store.get(job_id, owner=None)
    assert (job["model_status"], job["model_error"]) == (MODEL_FAILED, "the worker was lost")
    store.engine.dispose()
