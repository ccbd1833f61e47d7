"""`make run`'s stack keeps itself up: a worker or the embedded Redis killed with
SIGKILL is restarted while the API keeps answering, and jobs train afterwards;
a killed API comes back on the same port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

from tests.e2e.test_stack import ROOT, free_port, kill_if_running

JOB = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8]}, "epochs": 2}


def _child(stack: subprocess.Popen, word: str) -> psutil.Process | None:
    """The stack's direct child whose command line names ``word`` (celery, redis-server, gunicorn)."""
    for proc in psutil.Process(stack.pid).children():
        try:
            if any(word in part for part in proc.cmdline()):
                return proc
        except psutil.NoSuchProcess:
            pass
    return None


def _until(check, what: str, timeout: float = 90.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)
    return result


def _healthz(base: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{base}/healthz", timeout=5)
    except httpx.TransportError:
        return None


def _train(http: httpx.Client, base: str) -> dict:
    """Submit a tiny job (retrying while the queue is briefly unavailable) and wait for its end."""
    def submitted():
        response = http.post(f"{base}/v1/jobs", json=JOB)
        return response if response.status_code == 202 else None

    job_id = _until(submitted, "a 202 for a job", timeout=60, every=0.5).json()["id"]

    def finished():
        response = http.get(f"{base}/v1/jobs/{job_id}")
        if response.status_code == 200 and response.json()["status"] in ("succeeded", "failed", "cancelled"):
            return response.json()
        return None

    return _until(finished, f"job {job_id} to end", timeout=120, every=0.5)


def test_killed_children_are_restarted_and_a_graceful_restart_loses_no_job(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    token = "trx_" + "supervision-test-" + os.urandom(16).hex()
    env.update(PORT=str(port), TRAINRX_DATA_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1",
               TRAINRX_BOOTSTRAP_TOKEN=token, TRAINRX_CHECKPOINT_EVERY_EPOCHS="3")
    out, err = tmp_path / "stack.out", tmp_path / "stack.err"
    # Files, not pipes: the access log goes to stdout, and a full pipe would stall the API.
    with open(out, "w") as stdout, open(err, "w") as stderr:
        stack = subprocess.Popen([sys.executable, "-m", "core.stack"], cwd=ROOT, env=env, stdout=stdout,
                                 stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)
    try:
        _until(lambda: "curl -sS -X POST" in out.read_text() or stack.poll() is not None, "the stack", 180)
        assert stack.poll() is None, err.read_text()[-3000:]

        worker = _child(stack, "celery")
        worker.kill()
        new_worker = None
        while new_worker is None or new_worker.pid == worker.pid:
            health = _healthz(base)
            assert health is not None and health.status_code == 200  # the API answers throughout
            new_worker = _until(lambda: _child(stack, "celery"), "a worker process", timeout=30)
            time.sleep(0.2)
        assert f"worker (pid {worker.pid}) was killed by SIGKILL; restarting it" in err.read_text()
        assert _healthz(base).json()["workers"] >= 1
        assert _train(http, base)["status"] == "succeeded"  # served by the new worker

        redis_server = _child(stack, "redis-server")
        redis_server.kill()

        def redis_back() -> bool:
            health, restarted = _healthz(base), _child(stack, "redis-server")
            return (health is not None and health.status_code == 200
                    and restarted is not None and restarted.pid != redis_server.pid)

        _until(redis_back, "Redis back behind the API")
        assert f"redis (pid {redis_server.pid}) was killed by SIGKILL; restarting it" in err.read_text()
        assert _train(http, base)["status"] == "succeeded"  # the API and the worker reconnected

        api = _child(stack, "gunicorn")
        api.kill()  # the master; its orphaned workers still hold the port until the stack clears them

        def api_back() -> bool:
            health, restarted = _healthz(base), _child(stack, "gunicorn")
            return (health is not None and health.status_code == 200
                    and restarted is not None and restarted.pid != api.pid)

        _until(api_back, "a new API")
        assert f"api (pid {api.pid}) was killed by SIGKILL; restarting it" in err.read_text()

        # A graceful stop with one job running and two queued, then a restart: none is lost.
        long_job = http.post(f"{base}/v1/jobs", json={**JOB, "dataset": {"name": "moons", "train_samples": 200},
                                                        "epochs": 150, "batch_size": 8}).json()["id"]
        queued = [http.post(f"{base}/v1/jobs", json={**JOB, "seed": s}).json()["id"] for s in (1, 2)]
        _until(lambda: http.get(f"{base}/v1/jobs/{long_job}").json()["progress"]["epoch"] >= 6, "epochs to pass")
        children = psutil.Process(stack.pid).children(recursive=True)
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {alive}"
        with open(out, "a") as stdout, open(err, "a") as stderr:
            stack = subprocess.Popen([sys.executable, "-m", "core.stack"], cwd=ROOT, env=env, stdout=stdout,
                                     stderr=stderr)
        _until(lambda: out.read_text().count("curl -sS -X POST") == 2 or stack.poll() is not None, "a restart", 180)
        for job_id in (long_job, *queued):
            done = _until(lambda: (j := http.get(f"{base}/v1/jobs/{job_id}").json())["status"] in
                          ("succeeded", "failed", "cancelled") and j, f"job {job_id}", timeout=180, every=0.5)
            assert done["status"] == "succeeded" and done["attempts"] == 0  # handed back, not lost
        log = http.get(f"{base}/v1/jobs/{long_job}/logs").text
        assert "goes back to the queue" in log and "resuming from the checkpoint after epoch" in log

        children = psutil.Process(stack.pid).children(recursive=True)
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {alive}"
    finally:
        http.close()
        kill_if_running(stack)
