"""The renderer processes behind the plot endpoints: real child processes, each
failure made for real (a killed child, a stopped one, a request it cannot draw)."""

from __future__ import annotations

import io
import os
import signal

import pytest
from PIL import Image

from core.plots import pool as P
from core.plots.spec import JobData, Size

DATA = JobData(title="pool", status="succeeded",
               rows=[{"epoch": e, "train_loss": 1.0 / e, "grad_norm": {"output": 1.0}} for e in (1, 2)])
SIZE = Size(400, 300, 72)


def job_request(*plots: str) -> dict:
    return {"kind": "job", "plots": list(plots), "data": DATA.to_dict(), "size": SIZE.__dict__}


@pytest.fixture(scope="module")
def renderers():
    """One renderer for the module (each start imports matplotlib): tests that kill it start another."""
    pool = P.RenderPool(size=1)
    yield pool
    pool.close()


def only_child(pool: P.RenderPool) -> P._Child:
    (child,) = pool._idle
    return child


def test_a_renderer_draws_every_plot_asked_for_and_is_kept_for_the_next(renderers):
    pngs = renderers.call(job_request("curves", "steps"))
    assert [Image.open(io.BytesIO(png)).size for png in pngs] == [(400, 300), (400, 300)]
    first = only_child(renderers).proc.pid
    renderers.call(job_request("gradients"))
    assert only_child(renderers).proc.pid == first


def test_a_request_it_cannot_draw_is_an_error_and_the_renderer_lives_on(renderers):
    renderers.call(job_request("curves"))
    pid = only_child(renderers).proc.pid
    with pytest.raises(P.RenderFailed, match="KeyError"):
        renderers.call(job_request("histogram"))
    assert only_child(renderers).proc.pid == pid


def test_a_renderer_that_died_while_idle_is_replaced(renderers):
    renderers.call(job_request("curves"))
    dead = only_child(renderers).proc
    dead.kill()
    dead.wait()
    assert renderers.call(job_request("curves"))[0].startswith(b"\x89PNG")
    assert only_child(renderers).proc.pid != dead.pid


def test_a_renderer_that_stops_answering_is_killed_after_the_timeout(renderers, monkeypatch):
    renderers.call(job_request("curves"))
    stuck = only_child(renderers).proc
    os.kill(stuck.pid, signal.SIGSTOP)
    monkeypatch.setattr(P, "RENDER_TIMEOUT_S", 1)
    with pytest.raises(P.RenderFailed, match="did not answer"):
        renderers.call(job_request("curves"))
    assert stuck.poll() is not None and renderers._idle == []
    monkeypatch.undo()
    assert renderers.call(job_request("curves"))[0].startswith(b"\x89PNG")


def test_waiting_past_the_slot_wait_is_renderers_busy(renderers, monkeypatch):
    monkeypatch.setattr(P, "SLOT_WAIT_S", 0.1)
    renderers._slots.acquire()  # the only renderer is taken by another request
    try:
        with pytest.raises(P.RenderersBusy):
            renderers.call(job_request("curves"))
    finally:
        renderers._slots.release()


def test_a_forked_process_gets_a_pool_of_its_own():
    mine = P.pool()
    assert P.pool() is mine
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new pool, never the parent's renderers
        os.write(write, b"1" if P.pool() is not mine and P.pool().pid == os.getpid() else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
