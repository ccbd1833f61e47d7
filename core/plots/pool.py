"""Rendering plots in child processes, so that the API's event loop never renders.

The API runs gunicorn's gevent workers: one process serves every request and
stream with cooperative greenlets, and a matplotlib figure is a few hundred
milliseconds of Python holding the GIL. Rendered in the API process (in a
greenlet, or in a thread that still takes the GIL), it would stall every other
request of that process for as long. So each API process keeps up to
``MAX_RENDERERS`` long-lived children (``python -m core.plots.pool``) that
import matplotlib once and render on request.

Why long-lived children on raw pipes, and not ``ProcessPoolExecutor`` or a child
per plot (as core/upload_sandbox.py does for uploads):
- ``ProcessPoolExecutor`` relies on helper threads and multiprocessing pipes
  that gevent does not patch reliably;
- a fresh interpreter per plot would pay matplotlib's import (about a second)
  every time, and a live dashboard asks for a running job's curves every epoch;
- the parent speaks to a child through non-blocking pipes and ``select``, which
  gevent's monkey-patching makes cooperative: a greenlet waiting for a plot is
  parked, and other requests go on. Without gevent (Flask's test client,
  ``flask run``) the same code is an ordinary blocking wait.

A request is a length-prefixed JSON message (the job's numbers, never paths or
code); the answer is the PNGs, base64 in a length-prefixed JSON message. A child
that crashes, answers garbage or runs past ``RENDER_TIMEOUT_S`` is killed and a
new one started for the next request; it also exits when its stdin closes, so
children never outlive the API process. Each is replaced after
``RENDERS_PER_CHILD`` requests, which bounds whatever matplotlib keeps around.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from core.plots.spec import JobData, Size

log = logging.getLogger("trainrx.plots")

ROOT = Path(__file__).resolve().parents[2]
MAX_RENDERERS = 2  # children per API process: renders in parallel, the rest wait for one
SLOT_WAIT_S = 30  # past this, a request waiting for a free child gets RenderersBusy (a 503)
RENDER_TIMEOUT_S = 60  # one request's plots (a report renders four); matplotlib's import comes on top
START_TIMEOUT_S = 60
RENDERS_PER_CHILD = 500
# On a busy host the API's own requests come first: a plot can wait a little, /healthz should not.
RENDERER_NICENESS = 5
_LENGTH_BYTES = 8
_CHUNK = 1 << 16


class RenderersBusy(Exception):
    """Every renderer of this API process stayed busy for SLOT_WAIT_S."""


class RenderFailed(Exception):
    """A renderer crashed, timed out or could not draw these numbers."""


def _frame(payload: dict) -> bytes:
    body = json.dumps(payload, allow_nan=False).encode()
    return len(body).to_bytes(_LENGTH_BYTES, "big") + body


class _Child:
    """One renderer process and the parent's ends of its pipes (non-blocking)."""

    def __init__(self) -> None:
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        try:
            self.proc = subprocess.Popen([sys.executable, "-s", "-m", "core.plots.pool"], cwd=ROOT, env=env,
                                         stdin=to_child_r, stdout=from_child_w, close_fds=True)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        os.set_blocking(self.to_child, False)
        os.set_blocking(self.from_child, False)
        self.renders = 0
        self.first = True

    def call(self, request: dict) -> dict:
        timeout = RENDER_TIMEOUT_S + (START_TIMEOUT_S if self.first else 0)
        deadline = time.monotonic() + timeout
        self._send(_frame(request), deadline)
        length = int.from_bytes(self._receive(_LENGTH_BYTES, deadline), "big")
        answer = json.loads(self._receive(length, deadline))
        self.renders += 1
        self.first = False
        return answer

    def _wait(self, fd: int, writing: bool, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RenderFailed(f"the renderer did not answer within {RENDER_TIMEOUT_S} s")
        ready = select.select([], [fd], [], remaining) if writing else select.select([fd], [], [], remaining)
        if not any(ready):
            raise RenderFailed(f"the renderer did not answer within {RENDER_TIMEOUT_S} s")

    def _send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self.to_child, True, deadline)
            try:
                view = view[os.write(self.to_child, view[:_CHUNK]):]
            except BlockingIOError:
                continue

    def _receive(self, count: int, deadline: float) -> bytes:
        parts, got = [], 0
        while got < count:
            self._wait(self.from_child, False, deadline)
            try:
                chunk = os.read(self.from_child, min(_CHUNK, count - got))
            except BlockingIOError:
                continue
            if not chunk:
                raise RenderFailed(f"the renderer exited (status {self.proc.poll()})")
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("renderer %s did not exit", self.proc.pid)


class RenderPool:
    """Up to ``size`` renderer children of this process, started when first needed."""

    def __init__(self, size: int = MAX_RENDERERS) -> None:
        self.pid = os.getpid()
        self._slots = threading.BoundedSemaphore(size)  # gevent's own once gunicorn has patched threading
        self._idle: list[_Child] = []
        self._lock = threading.Lock()

    def call(self, request: dict) -> list[bytes]:
        if not self._slots.acquire(timeout=SLOT_WAIT_S):
            raise RenderersBusy(f"every plot renderer stayed busy for {SLOT_WAIT_S} s")
        try:
            try:
                child = self._idle_child() or _Child()
            except OSError as exc:  # no process could be started (out of memory, process limit)
                raise RenderFailed(f"could not start a renderer: {exc}") from exc
            try:
                answer = child.call(request)
            except (RenderFailed, OSError, ValueError) as exc:
                child.close()
                raise RenderFailed(str(exc)) from exc
            if child.renders >= RENDERS_PER_CHILD:
                child.close()
            else:
                with self._lock:
                    self._idle.append(child)
        finally:
            self._slots.release()
        if not answer.get("ok"):
            raise RenderFailed(answer.get("error") or "the renderer failed")
        return [base64.b64decode(item) for item in answer["png"]]

    def _idle_child(self) -> _Child | None:
        """A started child that is still alive (one that died while idle is let go)."""
        while True:
            with self._lock:
                child = self._idle.pop() if self._idle else None
            if child is None or child.proc.poll() is None:
                return child
            log.warning("renderer %s had exited (status %s); starting another", child.proc.pid, child.proc.poll())
            child.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.close()


_pool: RenderPool | None = None
_pool_lock = threading.Lock()


def pool() -> RenderPool:
    """This process's pool (a forked process gets its own, never its parent's children)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = RenderPool()
        return _pool


@atexit.register
def _close_pool() -> None:
    if _pool is not None and _pool.pid == os.getpid():
        _pool.close()


def render_job_plots(names: list[str], data: JobData, size: Size) -> list[bytes]:
    """PNGs of the named plots of one job, in order."""
    return pool().call({"kind": "job", "plots": list(names), "data": data.to_dict(), "size": size.__dict__})


def render_compare(jobs: list[JobData], metric: str, size: Size) -> bytes:
    return pool().call({"kind": "compare", "jobs": [j.to_dict() for j in jobs], "metric": metric,
                        "size": size.__dict__})[0]


# --- the child ------------------------------------------------------------------

def _render(request: dict) -> list[bytes]:
    from core.plots import render

    size = Size(**request["size"])
    if request["kind"] == "compare":
        return [render.compare_plot([JobData.from_dict(j) for j in request["jobs"]], request["metric"], size)]
    data = JobData.from_dict(request["data"])
    return [render.job_plot(name, data, size) for name in request["plots"]]


def _read_exactly(stream, count: int) -> bytes | None:
    data = stream.read(count)
    return data if len(data) == count else None


def main() -> None:
    os.nice(RENDERER_NICENESS)
    from core.plots import render  # noqa: F401  (matplotlib's import, once, before the first request)

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    while True:
        header = _read_exactly(requests, _LENGTH_BYTES)
        if header is None:  # the API process closed the pipe: it is gone or done with us
            return
        body = _read_exactly(requests, int.from_bytes(header, "big"))
        if body is None:
            return
        try:
            pngs = _render(json.loads(body))
            answer = {"ok": True, "png": [base64.b64encode(p).decode() for p in pngs]}
        except Exception as exc:  # noqa: BLE001 — one bad plot must not end the renderer
            traceback.print_exc()  # to the API's log (stderr is inherited)
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        answers.write(_frame(answer))
        answers.flush()


if __name__ == "__main__":
    main()
