"""A checkpoint survives its worker being lost between two writes (a host cut off from the
database mid-checkpoint): the meta file only ever names a state that was written whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import migrate
from core.artifacts import CHECKPOINT_META_FILE, ArtifactStore, checkpoint_file
from core.db import make_engine
from core.jobstore import JobStore
from core.settings import Settings
from core.storage import DatabaseStorage


class HostLost(Exception):
    pass


def test_a_worker_lost_mid_checkpoint_leaves_the_previous_one_whole(monkeypatch, redis_url):
    monkeypatch.setenv("REDIS_URL", redis_url)  # workers.celery_app reads it when imported
    from workers.job_hooks import JobHooks

    engine = make_engine("sqlite://")
    migrate.upgrade(engine)
    store, artifacts = JobStore(engine), ArtifactStore(DatabaseStorage(engine))
    job, _ = store.create({"name": "x", "epochs": 5, "dataset": {"name": "moons"}}, "cpu", owner="ann")
    job = store.start(job["id"], "w1")
    settings = Settings(data_dir=Path("/nonexistent"), database_url="", redis_url="")
    hooks = JobHooks(store, artifacts, job, settings)
    hooks.checkpoint(1, b"state one")
    hooks.checkpoint(2, b"state two")
    assert hooks.saved_checkpoint() == (2, b"state two")
    assert not artifacts.exists(job["id"], checkpoint_file(job["run"], 1))  # the state it replaced is gone

    write = artifacts.write_bytes

    def lost_before_the_meta(job_id, name, data):
        if name == CHECKPOINT_META_FILE:
            raise HostLost("the host went off the network")
        write(job_id, name, data)

    monkeypatch.setattr(artifacts, "write_bytes", lost_before_the_meta)
    with pytest.raises(HostLost):
        hooks.checkpoint(3, b"state three")
    monkeypatch.undo()
    # The next run finds the last whole checkpoint.
    assert JobHooks(store, artifacts, job, settings).saved_checkpoint() == (2, b"state two")
    engine.dispose()
