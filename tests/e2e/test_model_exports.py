"""The exports (.pt2, ONNX) follow the job as a task of their own (workers/export_task.py).

A stack of these tests' own: an embedded Redis, a SQLite database, the API under
gunicorn and one worker whose export messages go to a queue no worker consumes
(TRAINRX_EXPORT_QUEUE). So a finished job's model stays ``pending`` for as long as a
test wants, with no timing involved; the test then hands the message to the worker's
queue, as a delayed delivery would.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
import torch
from sqlalchemy import update

from core.artifacts import WEIGHTS_FILE
from core.db import jobs, make_engine
from core.embedded_redis import EmbeddedRedis
from core.job_status import utcnow
from core.jobstore import JobStore
from core.migrate import upgrade
from core.queueing import EXPORT_TASK, make_celery, publish_export
from core.redis_urls import redis_py_url
from core.settings import Settings
from core.tokens import USER, TokenStore
from tests.clients.conftest import start_api
from tests.conftest import FINISHED, OWNER, TOKENS, start_worker, stop_process
from trainrx import Client, ConflictError, GoneError, ModelNotReadyError
from workers.recovery import job_ids_with_messages

HELD = "exports-held"  # no worker consumes it
TINY = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8]}, "epochs": 2, "seed": 1}


@dataclass
class HeldStack:
    settings: Settings
    store: JobStore
    redis: redis.Redis
    api_url: str

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {TOKENS[OWNER]}"}, timeout=30)

    def sdk(self) -> Client:
        return Client(base_url=self.api_url, token=TOKENS[OWNER])

    def run(self, request: dict = TINY) -> dict:
        """Submit through the API; the job once it finished (its export then waits in HELD)."""
        with self.http() as api:
            resp = api.post("/v1/jobs", json=request)
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            return self.wait(api, job_id, lambda job: job["status"] in FINISHED)

    @staticmethod
    def wait(api: httpx.Client, job_id: str, until, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = api.get(f"/v1/jobs/{job_id}").json()
            if until(job):
                return job
            assert time.monotonic() < deadline, f"job {job_id}: {job['status']}, model {job.get('model')}"
            time.sleep(0.1)

    def held(self) -> set[str]:
        return job_ids_with_messages(self.redis, EXPORT_TASK, (HELD,))

    def wait_held(self, job_id: str, timeout: float = 120) -> None:
        """Until the job's export message is in HELD (the worker publishes it just after the job's
        final write; the recovery sweep re-publishes a lost one)."""
        deadline = time.monotonic() + timeout
        while job_id not in self.held():
            assert time.monotonic() < deadline, f"no export message for job {job_id} in {HELD}"
            time.sleep(0.1)

    def drop_held(self) -> None:
        """Lose the held export messages (as a flushed Redis would)."""
        for key in list(self.redis.scan_iter(match=f"{HELD}*")):
            self.redis.delete(key)

    def release(self, job_id: str) -> None:
        """Deliver the job's export to the worker: the held message goes, one on its queue comes."""
        self.drop_held()
        publish_export(make_celery(self.settings), job_id, "cpu")


@pytest.fixture(scope="module")
def held(settings, tmp_path_factory):
    root = tmp_path_factory.mktemp("held-exports")
    embedded = EmbeddedRedis(root / "redis")
    url = embedded.start()
    db_url = f"sqlite:///{root / 'trainrx.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    TokenStore(engine).create(OWNER, USER, label="tests", token=TOKENS[OWNER])
    own = replace(settings, data_dir=root, database_url=db_url, redis_url=url)
    worker = start_worker(own, root / "worker.log", name="test-held-exports", TRAINRX_EXPORT_QUEUE=HELD)
    api = start_api(own, root / "gunicorn.log")
    try:
        yield HeldStack(own, JobStore(engine), redis.Redis.from_url(redis_py_url(url)), next(api))
    finally:
        next(api, None)  # stops gunicorn
        stop_process(worker)
        engine.dispose()
        embedded.stop()


def test_the_job_ends_before_its_export_and_the_model_answers_409_until_it_is_ready(held, tmp_path):
    job = held.run()
    assert job["status"] == "succeeded" and job["model"]["status"] == "pending", job["model"]
    assert job["model"]["torch_version"] is None and job["model"]["onnx"] is None
    assert job["timings"]["total_s"] is not None
    held.wait_held(job["id"])  # published after the job's final write, the job id only

    with held.http() as api:
        for link in ("model", "model_onnx"):
            resp = api.get(job["links"][link])
            assert resp.status_code == 409 and resp.headers["content-type"].startswith("application/json")
            assert int(resp.headers["Retry-After"]) >= 1
            assert "being exported" in resp.json()["message"] and resp.json()["code"] == 409
        assert api.get(job["links"]["weights"]).status_code == 200  # the weights are part of the job

    with held.sdk() as sdk:
        network = sdk.jobs.load_model(job["id"])  # the weights only: no wait for the export
        with pytest.raises(ModelNotReadyError):
            sdk.jobs.download_model(job["id"], tmp_path / "early.pt2", wait_timeout=1.5)
        assert not (tmp_path / "early.pt2").exists()

        got: dict = {}
        waiting = threading.Thread(target=lambda: got.update(
            path=sdk.jobs.download_model(job["id"], tmp_path / "m.pt2", wait_timeout=300)))
        waiting.start()
        with held.http() as api:  # the SDK is asking while the export is held
            held.wait(api, job["id"], lambda j: j["model"]["status"] == "pending")
        held.release(job["id"])
        waiting.join(300)
        assert got["path"] == tmp_path / "m.pt2"
        onnx = sdk.jobs.download_model(job["id"], tmp_path / "m.onnx", format="onnx")
        assert onnx.stat().st_size > 0

    with held.http() as api:
        done = api.get(f"/v1/jobs/{job['id']}").json()
        log = api.get(job["links"]["logs"]).text
    assert done["model"]["status"] == "ready" and done["model"]["torch_version"] == torch.__version__
    assert done["model"]["bytes"] == got["path"].stat().st_size and done["model"]["onnx"]["bytes"] > 0
    assert done["status"] == "succeeded" and done["finished_at"] == job["finished_at"]  # the job did not change
    assert log.index("job succeeded") < log.index("exported the model with torch.export")
    program = torch.export.load(str(got["path"])).module()
    x = torch.randn(7, 2)
    with torch.inference_mode():
        torch.testing.assert_close(program(x), network(x), rtol=1e-5, atol=1e-5)


def test_a_failed_export_leaves_the_job_succeeded_and_says_why(held, tmp_path):
    job = held.run()
    assert job["model"]["status"] == "pending"
    held.wait_held(job["id"])
    (held.settings.artifacts_dir / job["id"] / WEIGHTS_FILE).write_bytes(b"not a weights file")
    held.release(job["id"])
    with held.http() as api:
        done = held.wait(api, job["id"], lambda j: j["model"]["status"] != "pending")
        assert done["status"] == "succeeded" and done["model"]["status"] == "failed"
        assert "weights could not be loaded" in done["model"]["error"], done["model"]
        resp = api.get(job["links"]["model"])
        assert resp.status_code == 410 and "export failed" in resp.json()["message"]
        assert "model export failed" in api.get(job["links"]["logs"]).text
    with held.sdk() as sdk, pytest.raises(GoneError) as caught:
        sdk.jobs.download_model(job["id"], tmp_path / "never.pt2")
    assert "weights could not be loaded" in caught.value.message


def test_a_job_without_weights_has_no_model(held):
    with held.http() as api:
        job = api.post("/v1/jobs", json={**TINY, "device": "cuda"}).json()  # waits on the gpu queue: no worker
        assert job["status"] == "queued" and job["model"] is None
        assert api.get(job["links"]["model"]).status_code == 409
        cancelled = api.post(f"/v1/jobs/{job['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["model"] is None
        resp = api.get(job["links"]["model"])
        assert resp.status_code == 409 and "Retry-After" not in resp.headers


def test_recovery_republishes_a_lost_export_and_ends_one_whose_workers_were_lost(held):
    lost = held.run()
    held.wait_held(lost["id"])
    held.drop_held()  # the message is gone (a flushed Redis): the sweep publishes it again
    held.wait_held(lost["id"])

    # A task took the export and its worker went away (its claim is older than the export limit
    # and the heartbeat grace): once, the export starts again; a second time, it ends failed.
    stale = utcnow() - timedelta(days=1)
    crashed, crashed_twice = held.run(), held.run()
    held.wait_held(crashed_twice["id"])
    held.drop_held()
    for job, attempts in ((crashed, 1), (crashed_twice, 2)):
        with held.store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job["id"]).values(model_claimed_at=stale,
                                                                           model_attempts=attempts))
    with held.http() as api:
        failed = held.wait(api, crashed_twice["id"], lambda j: j["model"]["status"] != "pending")
        assert failed["status"] == "succeeded" and failed["model"]["status"] == "failed"
        assert "lost 2 times" in failed["model"]["error"]
        assert api.get(failed["links"]["model"]).status_code == 410
        held.wait_held(crashed["id"])  # the sweep released the lost claim and published the export again
        assert "stopped answering; the export starts again" in api.get(crashed["links"]["logs"]).text

        held.release(crashed["id"])  # the restarted export runs to its end
        ready = held.wait(api, crashed["id"], lambda j: j["model"]["status"] != "pending")
        assert ready["model"]["status"] == "ready" and api.get(crashed["links"]["model"]).status_code == 200
