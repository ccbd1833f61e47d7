"""TRAINRX_RETENTION_DAYS: old finished jobs and unused uploads go; nothing else does."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import update

from core.db import datasets, jobs
from core.jobstore import utcnow
from core.retention import sweep
from core.uploads import UploadStore
from tests.conftest import run_job, start_worker, stop_process, submit
from tests.sample_uploads import as_npz, blobs, uploaded

TINY = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1}


def age(engine, *, job_id: str | None = None, dataset_id: str | None = None, days: int) -> None:
    """Make a job have finished, or an upload have been created and used, ``days`` ago."""
    then = utcnow() - timedelta(days=days)
    with engine.begin() as conn:
        if job_id:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(finished_at=then))
        if dataset_id:
            conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(created_at=then,
                                                                                    last_used_at=then))


def parts_of(client):
    p = client.application.extensions["trainrx"]
    return p.store, UploadStore(p.store.engine, p.storage), p.artifacts


def test_a_sweep_deletes_only_old_finished_jobs_and_old_unused_uploads(live, settings):
    store, uploads, artifacts = parts_of(live)
    x, y = blobs(rows_per_class=10)
    old_job, recent_job = run_job(live, TINY), run_job(live, TINY)
    old_queued = submit(live, {**TINY, "device": "cuda"})  # never finishes: never deleted
    unused, in_use, recent = (uploaded(live, as_npz(x, y)) for _ in range(3))
    waiting = submit(live, {"dataset": {"id": in_use["id"]}, "architecture": {"hidden_layers": [4]},
                            "device": "cuda"})
    age(store.engine, job_id=old_job["id"], days=40)
    with store.engine.begin() as conn:  # queued jobs have no finished_at; give it an old creation date
        conn.execute(update(jobs).where(jobs.c.id == old_queued["id"]).values(created_at=utcnow() - timedelta(40)))
    for dataset in (unused, in_use):
        age(store.engine, dataset_id=dataset["id"], days=40)

    result = sweep(store, uploads, artifacts, days=30)

    assert old_job["id"] in result.jobs and recent_job["id"] not in result.jobs
    assert unused["id"] in result.datasets
    assert in_use["id"] not in result.datasets and recent["id"] not in result.datasets
    assert live.get(old_job["links"]["self"]).status_code == 404
    assert not (settings.artifacts_dir / old_job["id"]).exists()
    for kept in (recent_job, old_queued, waiting):
        assert live.get(kept["links"]["self"]).status_code == 200
    assert live.get(unused["links"]["self"]).status_code == 404
    assert not (settings.uploads_dir / unused["id"]).exists()
    for kept in (in_use, recent):
        assert live.get(kept["links"]["self"]).status_code == 200
    for job in (old_queued, waiting):
        live.post(f"/v1/jobs/{job['id']}/cancel")


def test_a_worker_sweeps_periodically_when_retention_is_on(live, settings, tmp_path):
    store, _, _ = parts_of(live)
    old = run_job(live, TINY)
    x, y = blobs(rows_per_class=10)
    unused = uploaded(live, as_npz(x, y))
    age(store.engine, job_id=old["id"], dataset_id=unused["id"], days=3)
    # A second worker on a queue of its own: it trains nothing here, it only sweeps.
    proc = start_worker(settings, tmp_path / "retention-worker.log", name="retention", queue="retention-test",
                        TRAINRX_RETENTION_DAYS="2", TRAINRX_RETENTION_INTERVAL_S="1")
    try:
        deadline = time.monotonic() + 60
        while live.get(old["links"]["self"]).status_code != 404 or \
                live.get(unused["links"]["self"]).status_code != 404:
            assert time.monotonic() < deadline, (tmp_path / "retention-worker.log").read_text()[-3000:]
            time.sleep(0.2)
    finally:
        stop_process(proc)
    assert "retention: finished jobs and unused uploads are deleted after 2 days" in \
        (tmp_path / "retention-worker.log").read_text()
