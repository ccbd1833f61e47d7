"""Waiting on a resource by polling it: ``client.remedies.wait`` and ``client.sweeps.wait``."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from trainrx.errors import WaitTimeoutError

T = TypeVar("T")


def poll_until(fetch: Callable[[], T], done: Callable[[T], bool], *, timeout: float | None, poll_interval: float,
               resource_id: str, what: str) -> T:
    """Fetch until ``done`` holds and return the last fetch. Raises ``WaitTimeoutError`` (carrying
    the last fetch) after ``timeout`` seconds (None: no limit); the resource itself goes on."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = fetch()
        if done(current):
            return current
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeoutError(resource_id, timeout or 0.0, current, what=what)
        time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.monotonic())))
