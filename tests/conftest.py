"""Real parts for every test: a real Redis (embedded, or REDIS_URL), a real
database (SQLite, or DATABASE_URL), a real Celery worker process, tiny real
trainings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from sqlalchemy import text

from core import migrate
from core.db import make_engine, metadata
from core.embedded_redis import EmbeddedRedis
from core.queueing import WORKER_KEY_PREFIX
from core.redis_urls import redis_py_url
from core.settings import Limits, Quotas, Settings
from core.tokens import ADMIN, USER, TokenStore, new_token

ROOT = Path(__file__).resolve().parents[1]
FINISHED = ("succeeded", "failed", "cancelled")
# The owner the `client` fixture (and the SDK/CLI tests) act as; OTHER_OWNER checks isolation.
OWNER, OTHER_OWNER, ADMIN_OWNER = "tester", "mallory", "root"
# Tokens made once per session (random, like real ones): one per owner above.
TOKENS = {OWNER: new_token(), OTHER_OWNER: new_token(), ADMIN_OWNER: new_token()}
# The suite's owners submit, poll and stream far more than a person would: quotas stay out of its way
# (tests/service/test_quotas.py builds apps with tight ones). The same for the API and worker processes.
GENEROUS = Quotas(max_active_jobs_per_owner=1_000_000, rate_limit=None, max_upload_mb_per_owner=1_000_000,
                  max_streams_per_owner=1000, max_streams=900, stream_max_s=3600)
GENEROUS_ENV = {"TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER": "1000000", "TRAINRX_RATE_LIMIT": "off",
                "TRAINRX_MAX_UPLOAD_MB_PER_OWNER": "1000000", "TRAINRX_MAX_STREAMS_PER_OWNER": "1000",
                "TRAINRX_MAX_STREAMS": "900", "TRAINRX_STREAM_MAX_S": "3600"}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("REDIS_URL")
    if url:
        client = redis.Redis.from_url(redis_py_url(url))
        # Leftover queue messages from an earlier run would name jobs this run never made.
        for key in ["unacked", "unacked_index", *client.keys("cpu*"), *client.keys("gpu*"), *client.keys("_kombu.*"),
                    *client.keys("trainrx:*")]:
            client.delete(key)
        yield url
        return
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield embedded.start()
    embedded.stop()


@pytest.fixture(scope="session")
def settings(tmp_path_factory, redis_url) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'trainrx.db'}"
    engine = make_engine(database_url)
    metadata.drop_all(engine)  # a shared test database starts empty, then is migrated like a real one
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(engine)
    store = TokenStore(engine)
    for owner, token in TOKENS.items():
        store.create(owner, ADMIN if owner == ADMIN_OWNER else USER, label="tests", token=token)
    engine.dispose()
    return Settings(data_dir=data_dir, database_url=database_url, redis_url=redis_url, default_queue="cpu",
                    limits=Limits(), quotas=GENEROUS)


# Recovery on a test's time scale: lost workers are noticed after 10 s (heartbeats come every 2 s,
# even on a loaded 2-core machine), the sweep runs every second, checkpoints after every epoch.
RECOVERY_ENV = {"TRAINRX_HEARTBEAT_GRACE_S": "10", "TRAINRX_RECOVERY_INTERVAL_S": "1",
                "TRAINRX_CHECKPOINT_EVERY_EPOCHS": "1"}


def worker_env(settings: Settings, **extra: str) -> dict:
    # One torch thread: a test worker shares the 2 cores with pytest and the API, and two OpenMP
    # threads on a busy machine wait on each other at every small op (a 64-wide MLP's step slowed
    # from well under a millisecond to tens of milliseconds here).
    env = dict(os.environ, TRAINRX_DATA_DIR=str(settings.data_dir), DATABASE_URL=settings.database_url,
               REDIS_URL=settings.redis_url, TRAINRX_DEFAULT_QUEUE="cpu", PYTHONPATH=str(ROOT),
               TRAINRX_TORCH_THREADS="1", **RECOVERY_ENV, **GENEROUS_ENV)
    env.update(extra)
    return env


def start_worker(settings: Settings, log_path: Path, name: str = "test-cpu", queue: str = "cpu",
                 **extra_env: str) -> subprocess.Popen:
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queue, "--pool", "threads",
         "--concurrency", "1", "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=ROOT, env=worker_env(settings, **extra_env), stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis.from_url(redis_py_url(settings.redis_url))
    deadline = time.monotonic() + 90
    while not any(name in k.decode() for k in client.keys(f"{WORKER_KEY_PREFIX}*")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the worker did not start; see {log_path}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (a graceful stop for celery and gunicorn), then SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def worker(settings, tmp_path_factory):
    proc = start_worker(settings, tmp_path_factory.mktemp("logs") / "worker.log")
    yield proc
    stop_process(proc)


@pytest.fixture(scope="session")
def app(settings):
    from service import create_app

    return create_app({"SETTINGS": settings, "TESTING": True})


def authed_client(app, owner: str = OWNER):
    """A Flask test client that sends ``owner``'s token with every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKENS[owner]}"
    return client


@pytest.fixture()
def client(app):
    """The API, as the owner OWNER (a user token)."""
    return authed_client(app)


@pytest.fixture()
def other_client(app):
    """The API, as another user: OWNER's resources must not exist for it."""
    return authed_client(app, OTHER_OWNER)


@pytest.fixture()
def admin_client(app):
    return authed_client(app, ADMIN_OWNER)


@pytest.fixture()
def anonymous(app):
    """The API without a credential."""
    return app.test_client()


@pytest.fixture()
def live(client, worker):
    """The API client with a worker serving the cpu queue."""
    return client


def wait_for(client, job_id: str, timeout: float = 300, statuses=FINISHED) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")
        time.sleep(0.1)


def wait_for_model(client, job_id: str, timeout: float = 300) -> dict:
    """The job once its exports (which follow it as a task of their own) are no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        if job["status"] in FINISHED and (job["model"] or {}).get("status") != "pending":
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id}: model still {job['model']} after {timeout}s")
        time.sleep(0.1)


def submit(client, request: dict, **headers) -> dict:
    resp = client.post("/v1/jobs", json=request, headers=headers)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def run_job(client, request: dict, timeout: float = 300) -> dict:
    return wait_for(client, submit(client, request)["id"], timeout)


# A job name a browser must never run nor fetch, and that matplotlib must not parse as mathtext.
HOSTILE_NAME = '<script>alert("x")</script><img src="http://evil.example/a.png"> $\\frac{1}{0$ &amp;'
# A tiny deep sigmoid network: three epochs in seconds, a diagnosis with findings and patches.
PLOTTED = {"name": HOSTILE_NAME, "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8, 8, 8]},
           "activation": "sigmoid", "optimizer": {"name": "sgd", "learning_rate": 0.05}, "epochs": 3, "seed": 0}


@pytest.fixture(scope="session")
def plotted_job(app, worker) -> dict:
    """One finished tiny job of OWNER, trained once for the plot, report and CLI tests."""
    job = run_job(authed_client(app), PLOTTED)
    assert job["status"] == "succeeded", job
    return job
