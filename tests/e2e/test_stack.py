"""`make run`'s stack from the outside, as a newcomer uses it: start it, run the
curl it prints, read the results, press Ctrl-C."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_if_running(stack: subprocess.Popen) -> None:
    """After a failed test: the stack and everything it started, so that nothing is left running."""
    if stack.poll() is not None:
        return
    leftovers = psutil.Process(stack.pid).children(recursive=True)
    stack.kill()
    stack.wait()
    for proc in leftovers:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def test_the_stack_serves_the_printed_curl_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    token = "trx_" + "stack-test-" + os.urandom(16).hex()
    env.update(PORT=str(port), TRAINRX_DATA_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1",
               TRAINRX_BOOTSTRAP_TOKEN=token)
    log = open(tmp_path / "stack.log", "w+")
    stack = subprocess.Popen([sys.executable, "-m", "core.stack"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=log, text=True)
    try:
        curl = None
        deadline = time.monotonic() + 180
        for line in stack.stdout:
            if line.strip().startswith("curl -sS -X POST"):
                curl = line.strip()
                break
            assert time.monotonic() < deadline, "the stack printed no curl command in time"
        assert curl is not None, (tmp_path / "stack.log").read_text()[-3000:]
        assert "-H 'Content-Type: application/json'" in curl
        assert f"-H 'Authorization: Bearer {token}'" in curl
        children = psutil.Process(stack.pid).children(recursive=True)
        assert len(children) >= 3  # redis, worker, gunicorn (+ its workers)

        out = subprocess.run(shlex.split(curl) + ["-w", "\n%{http_code}"], capture_output=True, text=True,
                             timeout=60)
        body, code = out.stdout.rsplit("\n", 1)
        assert code == "202", out.stdout
        job_id = re.search(r'"id":\s*"([0-9a-f]{32})"', body).group(1)

        base = f"http://127.0.0.1:{port}"
        anonymous = httpx.get(f"{base}/v1/jobs/{job_id}")
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        assert httpx.get(f"{base}/healthz").status_code == 200
        http = httpx.Client(headers={"Authorization": f"Bearer {token}"})
        assert http.get(f"{base}/v1/me").json()["role"] == "admin"
        deadline = time.monotonic() + 180
        while (job := http.get(f"{base}/v1/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert job["status"] == "succeeded", job
        assert len(http.get(f"{base}/v1/jobs/{job_id}/curves").json()["epoch"]) == job["summary"]["epochs_run"]
        assert http.get(f"{base}/v1/jobs/{job_id}/diagnosis").json()["verdict"] == "healthy"
        weights = http.get(f"{base}/v1/jobs/{job_id}/weights")
        assert weights.status_code == 200 and len(weights.content) > 1000
        assert (tmp_path / "var" / "trainrx.db").exists()

        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {alive}"
    finally:
        kill_if_running(stack)
