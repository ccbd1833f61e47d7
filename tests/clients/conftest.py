"""The SDK and the CLI against a live API: gunicorn with the production worker
class (service/gunicorn_conf.py) on a free port, the session's real worker,
Redis and database."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import OWNER, ROOT, TOKENS, stop_process, worker_env

CLI = str(Path(sys.executable).with_name("trainrx"))
# Jobs that ask for CUDA wait on the gpu queue, which no test worker serves: they stay queued.
WAITING = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1, "device": "cuda"}
SMALL = {"name": "sdk-small", "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [16]}, "epochs": 6}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(settings, log_path: Path, **env: str):
    """gunicorn with the production config on a free port; yields its URL, stops it after."""
    port = free_port()
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "service" / "gunicorn_conf.py"),
                             "--bind", f"127.0.0.1:{port}", "service.wsgi:app"],
                            cwd=ROOT, env=worker_env(settings, **env), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def api_url(settings, tmp_path_factory) -> str:
    yield from start_api(settings, tmp_path_factory.mktemp("api") / "gunicorn.log", TRAINRX_EVENTS_KEEPALIVE_S="1")


@pytest.fixture()
def sdk(api_url, worker):
    from trainrx import Client

    with Client(base_url=api_url, token=TOKENS[OWNER]) as client:
        yield client


def run_cli(*args: str, url: str | None = None, env: dict | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed `trainrx` console script, as a CI job runs it."""
    import os

    full_env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "TRAINRX_URL", "TRAINRX_TOKEN")}
    full_env["TRAINRX_TOKEN"] = TOKENS[OWNER]
    full_env.update(env or {})
    if url is not None:
        full_env["TRAINRX_URL"] = url
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=cwd)


JOB = {"id": "a" * 32, "name": None, "status": "running", "queue": "cpu", "request": {}, "progress": {"epoch": 1,
       "epochs": 2}, "summary": None, "timings": None, "error": None, "data": None, "links": {},
       "created_at": "2026-01-01T00:00:00+00:00", "started_at": None, "finished_at": None}


class Script:
    """Answers per path, in order (the last one repeats); records every request."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple]] = {}
        self.seen: list[tuple[str, str, dict]] = []

    def on(self, method: str, path: str, *answers: tuple) -> None:
        self.answers[f"{method} {path}"] = list(answers)

    def next(self, method: str, path: str) -> tuple:
        queue = self.answers.get(f"{method} {path}") or [(404, {"code": 404, "message": "not scripted"}, {})]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture()
def scripted():
    """A scripted HTTP server on a free port and a Client for it (max_retries=2)."""
    from trainrx import Client

    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            script.seen.append((self.command, self.path, dict(self.headers)))
            status, body, headers = script.next(self.command, self.path.split("?")[0])
            if status == "drop":  # close the connection without answering
                self.close_connection = True
                return
            if status == "slow":
                time.sleep(body)
                status, body = 200, JOB
            text = isinstance(body, str)  # a raw body (an event stream), sent as given
            raw = body.encode() if text else json.dumps(body).encode()
            self.send_response(status)
            if not text:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("X-Request-ID", f"req-{len(script.seen)}")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = Client(base_url=f"http://127.0.0.1:{server.server_address[1]}", max_retries=2)
    yield script, client
    client.close()
    server.shutdown()
    server.server_close()
