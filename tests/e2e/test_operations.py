"""Operating a deployment, on a stack of this module's own: its own Redis and
database, the API under gunicorn (as in production: gevent, two processes,
prometheus-client's multiprocess mode, JSON logs) and real worker processes.

- a drained worker takes no new job while another one does, even across its restart;
  undrained, it takes jobs again;
- ``GET /metrics`` is scraped over HTTP and parsed with prometheus-client's parser;
- the API's and the workers' JSON log lines carry the request id, job id and owner.

Its own Redis and database keep the drained workers (and the jobs they must not
take) away from the session's worker and the other tests' queued jobs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from core import migrate
from core.cluster_metrics import DRAINING_PREFIX, live_workers
from core.db import make_engine
from core.embedded_redis import EmbeddedRedis
from core.jobstore import JobStore
from core.redis_urls import redis_py_url
from core.settings import Limits, Settings
from core.tokens import USER, TokenStore
from tests.conftest import FINISHED, GENEROUS, GENEROUS_ENV, OWNER, ROOT, TOKENS, start_worker, stop_process

METRICS_TOKEN = "metrics-" + "s" * 32
TINY = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 2}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(settings, API base URL, the API's log file) of a private stack; no worker yet."""
    root = tmp_path_factory.mktemp("ops")
    embedded = EmbeddedRedis(root / "redis")
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'ops.db'}",
                        redis_url=embedded.start(), limits=Limits(), quotas=GENEROUS)
    settings.data_dir.mkdir()
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    TokenStore(engine).create(OWNER, USER, label="ops", token=TOKENS[OWNER])
    engine.dispose()
    port, api_log = _free_port(), root / "api.log"
    env = dict(os.environ, TRAINRX_DATA_DIR=str(settings.data_dir), DATABASE_URL=settings.database_url,
               REDIS_URL=settings.redis_url, PYTHONPATH=str(ROOT), TRAINRX_LOG_FORMAT="json",
               TRAINRX_METRICS_TOKEN=METRICS_TOKEN, **GENEROUS_ENV)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn_conf.py makes one of its own
    with open(api_log, "wb") as out:
        api = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "service/gunicorn_conf.py", "--bind",
                                f"127.0.0.1:{port}", "service.wsgi:app"], cwd=ROOT, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if api.poll() is not None or time.monotonic() > deadline:
            api.kill()
            raise RuntimeError(f"gunicorn did not start:\n{api_log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield settings, base, api_log
    stop_process(api)
    embedded.stop()


@pytest.fixture(scope="module")
def api(stack):
    _, base, _ = stack
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKENS[OWNER]}"}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def workers(stack, tmp_path_factory):
    """Two workers, started together: ``a`` logs JSON; ``b`` was drained before it started
    (its drain record is in Redis), so it must start drained. {name: (process, log file)}."""
    settings = stack[0]
    logs = tmp_path_factory.mktemp("ops-logs")
    redis.Redis.from_url(redis_py_url(settings.redis_url)).set(
        f"{DRAINING_PREFIX}ops-b@{socket.gethostname()}", json.dumps({"queues": ["cpu"], "since": time.time()}))
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(start_worker, settings, logs / "a.log", name="ops-a", TRAINRX_LOG_FORMAT="json")
        b = pool.submit(start_worker, settings, logs / "b.log", name="ops-b")
        procs = {"a": (a.result(), logs / "a.log"), "b": (b.result(), logs / "b.log")}
    yield procs
    for proc, _ in procs.values():  # idle by now: a warm shutdown has nothing to hand back
        proc.terminate()
    for proc, _ in procs.values():
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # the private Redis and database go away with the module
            proc.kill()
            proc.wait()


def _drain(settings: Settings, *args: str) -> str:
    """The operator's command, as documented (docs/deploy.md)."""
    env = dict(os.environ, REDIS_URL=settings.redis_url, TRAINRX_DATA_DIR=str(settings.data_dir),
               DATABASE_URL=settings.database_url, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "workers.drain", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _worker_name(settings: Settings, prefix: str) -> str:
    names = live_workers(redis.Redis.from_url(redis_py_url(settings.redis_url)))
    return next(name for name in names if name.startswith(prefix + "@"))


def _submit(api: httpx.Client, **headers) -> str:
    resp = api.post("/v1/jobs", json=TINY, headers=headers)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def _wait(api: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.2)


def _ran_on(settings: Settings, job_id: str) -> str:
    engine = make_engine(settings.database_url)
    try:
        return JobStore(engine).get(job_id, owner=None)["worker"]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def first_job(api, workers) -> dict:
    """Submitted once both workers are up: ``b`` is drained, so ``a`` runs it."""
    job = _wait(api, _submit(api, **{"X-Request-ID": "ops-submit-1"}))
    assert job["status"] == "succeeded", job
    return job


def test_a_drained_worker_takes_no_new_job_until_undrained(stack, api, workers, first_job):
    settings = stack[0]
    a, b = _worker_name(settings, "ops-a"), _worker_name(settings, "ops-b")
    assert _ran_on(settings, first_job["id"]) == a  # b started drained and stayed so
    assert _drain(settings, "status").splitlines() == sorted([f"{a}\ttaking jobs", f"{b}\tdrained"])
    assert f"{a}: drained (gave up cpu)" in _drain(settings, "drain", "--worker", a, "--wait")
    assert f"{b}: takes jobs again from cpu" in _drain(settings, "undrain", "--worker", b)
    second = _wait(api, _submit(api))
    assert second["status"] == "succeeded" and _ran_on(settings, second["id"]) == b


def _samples(text: str) -> dict:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_are_scraped_from_gunicorn_and_parsed(stack, api, first_job):
    base = stack[1]
    assert httpx.get(f"{base}/metrics").status_code == 401
    assert httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKENS[OWNER]}"}).status_code == 403
    for _ in range(4):  # two gunicorn processes: the requests spread over both, the counts add up
        assert api.get(f"/v1/jobs/{first_job['id']}").status_code == 200
    resp = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    got = _samples(resp.text)

    def value(name: str, **labels) -> float:
        return got[(name, frozenset(labels.items()))]

    succeeded = value("trainrx_jobs", status="succeeded", queue="cpu")
    assert succeeded >= 1 and value("trainrx_jobs", status="running", queue="gpu") == 0
    assert value("trainrx_queue_depth", queue="cpu") == 0
    assert value("trainrx_workers_live") >= 1
    assert value("trainrx_epochs_total", queue="cpu") >= TINY["epochs"] * succeeded
    assert ("trainrx_epochs_per_second", frozenset({"queue": "cpu"}.items())) in got  # its windows: test_cluster_metrics
    assert value("trainrx_job_duration_seconds_count", queue="cpu") == succeeded
    assert value("trainrx_job_duration_seconds_bucket", queue="cpu", le="+Inf") == succeeded
    assert value("trainrx_job_queue_wait_seconds_count", queue="cpu") == succeeded
    assert value("trainrx_job_duration_seconds_sum", queue="cpu") > 0
    job_rule = {"endpoint": "/v1/jobs/<job_id>", "method": "GET", "status": "200"}
    assert value("trainrx_http_requests_total", **job_rule) >= 4
    assert value("trainrx_http_request_duration_seconds_count", **job_rule) >= 4
    assert value("trainrx_http_requests_total", endpoint="/v1/jobs", method="POST", status="202") >= succeeded


def _json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_the_api_logs_one_json_line_per_request_with_its_id_and_owner(stack, first_job):
    lines = _json_lines(stack[2])
    submitted = [line for line in lines if line.get("request_id") == "ops-submit-1" and line.get("event") == "request"]
    assert len(submitted) == 1, lines[-20:]
    line = submitted[0]
    assert line["owner"] == OWNER and line["status"] == 202 and line["endpoint"] == "/v1/jobs"
    assert line["component"] == "api" and line["level"] == "INFO" and line["ts"].endswith("Z")
    assert all(line["component"] == "api" for line in lines)  # gunicorn's own lines are JSON too


def test_the_worker_logs_json_lines_naming_the_job_and_owner(workers, first_job):
    lines = _json_lines(workers["a"][1])
    about_job = [line for line in lines if line.get("job_id") == first_job["id"]]
    assert about_job and all(line["component"] == "worker" for line in about_job)
    assert any(line.get("owner") == OWNER and "starts the job" in line["message"] for line in about_job)
