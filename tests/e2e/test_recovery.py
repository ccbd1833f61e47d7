"""No job is lost or stuck: real worker processes, a Redis and a database of these
tests' own (the session's are never stopped or flushed), faults made for real."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import redis
from safetensors.numpy import load as load_safetensors

from core.artifacts import WEIGHTS_FILE, ArtifactStore
from core.db import make_engine
from core.embedded_redis import EmbeddedRedis
from core.jobstore import FAILED, SUCCEEDED, JobStore
from core.migrate import upgrade
from core.queueing import make_celery, publish_job
from core.redis_urls import redis_py_url
from core.settings import Settings
from core.spec import normalise
from core.storage import LocalStorage
from tests.conftest import FINISHED, OWNER, start_worker, stop_process
from core.job_runs import finish_durably

# Long enough to be killed mid-run, small enough to finish in seconds.
REQUEST = {"dataset": {"name": "moons", "train_samples": 400}, "architecture": {"hidden_layers": [32, 32]},
           "activation": "relu", "optimizer": {"name": "momentum", "learning_rate": 0.05},
           "regularization": {"dropout": 0.1}, "epochs": 40, "batch_size": 16, "seed": 3}
FAST = {"TRAINRX_HEARTBEAT_GRACE_S": "3", "TRAINRX_RECOVERY_INTERVAL_S": "0.5",
        "TRAINRX_CHECKPOINT_EVERY_EPOCHS": "1", "TRAINRX_TORCH_THREADS": "1"}


class Stack:
    """A Redis, a SQLite database and workers that belong to one test."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root, self.redis = root, EmbeddedRedis(root / "redis")
        url = self.redis.start()
        db_url = f"sqlite:///{root / 'trainrx.db'}"
        engine = make_engine(db_url)
        upgrade(engine)
        self.settings = replace(settings, data_dir=root, database_url=db_url, redis_url=url)
        self.store = JobStore(engine)
        self.celery = make_celery(self.settings)
        self.workers: dict[str, object] = {}

    def worker(self, name: str):
        proc = start_worker(self.settings, self.root / f"{name}.log", name=name, **FAST)
        self.workers[name] = proc
        return proc

    def submit(self, request: dict, publish: bool = True) -> str:
        job, _ = self.store.create(normalise(request, limits=self.settings.limits, resolver=None), "cpu",
                                   owner=OWNER)
        if publish:
            publish_job(self.celery, job["id"], "cpu")
        return job["id"]

    def wait(self, job_id: str, statuses=FINISHED, timeout: float = 180, until=None) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.store.get(job_id, owner=None)
            if job["status"] in statuses and (until is None or until(job)):
                return job
            assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}; logs under {self.root}"
            time.sleep(0.2)

    def close(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                stop_process(proc)
        self.store.engine.dispose()
        self.redis.stop()


@pytest.fixture()
def stack(tmp_path, settings):
    own = Stack(tmp_path, settings)
    yield own
    own.close()


def weights(stack: Stack, job_id: str) -> dict:
    return load_safetensors(ArtifactStore(LocalStorage(stack.settings.data_dir)).read_bytes(job_id, WEIGHTS_FILE))


def test_a_worker_killed_mid_job_is_reaped_and_the_job_resumes_bit_equal(stack):
    a, b = stack.worker("rec-a"), stack.worker("rec-b")
    job_id = stack.submit(REQUEST)
    running = stack.wait(job_id, ("running",), until=lambda j: j["progress_epoch"] >= 5)
    victim = a if running["worker"].startswith("rec-a") else b
    psutil.Process(victim.pid).kill()  # SIGKILL: no warm shutdown, no hand-back
    victim.wait()

    done = stack.wait(job_id)
    assert done["status"] == SUCCEEDED and done["attempts"] == 1 and done["run"] == 2
    log = "\n".join(line for _, line in stack.store.logs(job_id))
    assert "stopped answering" in log and "resuming from the checkpoint after epoch" in log
    epochs = [row["epoch"] for row in stack.store.epochs(job_id)]
    assert epochs == list(range(1, done["summary"]["epochs_run"] + 1))  # continuous: no gap, no repeat

    # The same request never interrupted ends the same, bit for bit (CPU).
    twin = stack.submit(REQUEST)
    assert stack.wait(twin)["status"] == SUCCEEDED
    assert stack.store.epochs(twin) == stack.store.epochs(job_id)
    resumed, straight = weights(stack, job_id), weights(stack, twin)
    assert resumed.keys() == straight.keys()
    assert all((resumed[k] == straight[k]).all() for k in resumed)


def test_jobs_survive_a_lost_queue_and_a_crash_between_insert_and_publish(stack):
    lost = [stack.submit({**REQUEST, "epochs": 2, "seed": s}) for s in range(2)]
    never_published = stack.submit({**REQUEST, "epochs": 2}, publish=False)
    redis.Redis.from_url(redis_py_url(stack.settings.redis_url)).flushall()  # Redis lost everything
    time.sleep(1.2)  # older than the sweep's 2 x interval
    stack.worker("rec-c")  # sweeps at start: the database is the truth about queued work
    for job_id in (*lost, never_published):
        assert stack.wait(job_id)["status"] == SUCCEEDED


def test_the_final_write_waits_out_a_locked_database(stack):
    """The database is unavailable when the job ends (here: SQLite locked by another writer for
    a few seconds): the end is retried with backoff and recorded once it is back."""
    job_id = stack.submit(REQUEST, publish=False)
    run = stack.store.start(job_id, "w")["run"]
    quick = JobStore(make_engine(stack.settings.database_url, busy_timeout_s=0.2))  # fails fast, retries
    holder = stack.store.engine.raw_connection()
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(2.5, holder.commit)
    released.start()
    try:
        finish_durably(quick, job_id, run, FAILED, error={"type": "internal_error", "message": "boom"})
    finally:
        released.join()
        holder.close()
    assert stack.store.get(job_id, owner=None)["status"] == FAILED
