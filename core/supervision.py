"""Keeping ``make run``'s children alive (``core/stack.py``).

A child that dies is started again, after a pause that doubles while it keeps
dying soon after each start (1 s, 2 s, 4 s ... up to 30 s). A child that ran for
a while before it died starts the count afresh: one crash is an accident, a
crash loop is a fault to fix, and after a few quick deaths in a row the
supervisor gives up rather than hide it. Every death and restart is a line on
stderr naming the child, its pid and how it ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    # A child that ran this long before dying was not crash-looping: its count starts again.
    stable_after_s: float = 60.0
    # Quick deaths in a row that end the stack (the restarts before it wait 1+2+4+8+16 s).
    max_deaths_in_a_row: int = 6

    def delay(self, deaths_in_a_row: int) -> float:
        return min(self.first_delay_s * 2 ** (deaths_in_a_row - 1), self.max_delay_s)


class GaveUp(Exception):
    """A child kept dying; the message says which and how often."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Child:
    """One supervised process. ``launch`` starts it and returns it once it is up;
    ``own_process_group`` says it leads a group (``start_new_session``) whose
    leftovers (gunicorn's workers, when the master dies) are killed with it."""

    def __init__(self, name: str, launch: Callable[[], subprocess.Popen], *, own_process_group: bool = False) -> None:
        self.name = name
        self.launch = launch
        self.own_process_group = own_process_group
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.deaths_in_a_row = 0
        self.restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.restart_at = None
        self.started_at = time.monotonic()
        self.proc = self.launch()

    def kill_leftovers(self) -> None:
        if self.own_process_group and self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class Supervisor:
    def __init__(self, policy: RestartPolicy = RestartPolicy(), log: Callable[[str], None] = _stderr) -> None:
        self.policy = policy
        self.log = log
        self.children: list[Child] = []

    def start(self, child: Child) -> None:
        """Start ``child`` for the first time; a failure here is the caller's to report."""
        self.children.append(child)
        child.start()

    def first_dead(self) -> Child | None:
        return next((child for child in self.children if not child.alive), None)

    def check(self) -> None:
        """One round: notice the children that died, restart those whose pause is over.
        Raises GaveUp when one has died ``max_deaths_in_a_row`` times in a row."""
        for child in self.children:
            if child.restart_at is None:
                if not child.alive:
                    self._died(child, describe_exit(child.proc.returncode))
            elif time.monotonic() >= child.restart_at:
                self._restart(child)

    def _died(self, child: Child, how: str) -> None:
        child.kill_leftovers()
        ran_s = time.monotonic() - child.started_at
        child.deaths_in_a_row = child.deaths_in_a_row + 1 if ran_s < self.policy.stable_after_s else 1
        pid = f" (pid {child.proc.pid})" if child.proc is not None else ""
        if child.deaths_in_a_row >= self.policy.max_deaths_in_a_row:
            raise GaveUp(f"{child.name}{pid} {how}; it died {child.deaths_in_a_row} times in a row, each within "
                         f"{self.policy.stable_after_s:g} s of its start: giving up (its output above says why)")
        delay = self.policy.delay(child.deaths_in_a_row)
        self.log(f"trainrx: {child.name}{pid} {how}; restarting it in {delay:g} s "
                 f"({child.deaths_in_a_row} in a row)")
        child.restart_at = time.monotonic() + delay

    def _restart(self, child: Child) -> None:
        try:
            child.start()
        except Exception as exc:  # noqa: BLE001 — a start that fails counts as one more death
            child.proc = None
            self._died(child, f"could not be started ({exc})")
            return
        self.log(f"trainrx: {child.name} restarted (pid {child.proc.pid})")
