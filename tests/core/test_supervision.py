"""The supervisor with real (tiny) child processes and a policy scaled down to
milliseconds; tests/e2e/test_stack_supervision.py kills real workers and Redis."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from core.supervision import Child, GaveUp, RestartPolicy, Supervisor, describe_exit

FAST = RestartPolicy(first_delay_s=0.01, max_delay_s=0.04, stable_after_s=60, max_deaths_in_a_row=4)


def _python(code: str):
    return lambda: subprocess.Popen([sys.executable, "-c", code])


def _run_until(supervisor: Supervisor, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline
        supervisor.check()
        time.sleep(0.01)


def test_the_delay_doubles_up_to_its_cap():
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_killed_child_is_restarted_with_a_line_naming_it():
    lines: list[str] = []
    supervisor = Supervisor(FAST, log=lines.append)
    child = Child("worker", _python("import time; time.sleep(60)"))
    supervisor.start(child)
    first = child.proc
    try:
        first.kill()
        _run_until(supervisor, lambda: child.proc is not first and child.alive)
        assert lines[0].startswith(f"trainrx: worker (pid {first.pid}) was killed by SIGKILL; restarting it in")
        assert lines[1] == f"trainrx: worker restarted (pid {child.proc.pid})"
        assert child.deaths_in_a_row == 1
    finally:
        child.proc.kill()
        child.proc.wait()


def test_a_child_that_keeps_dying_is_given_up_on():
    lines: list[str] = []
    supervisor = Supervisor(FAST, log=lines.append)
    child = Child("api", _python("raise SystemExit(3)"))
    supervisor.start(child)
    with pytest.raises(GaveUp, match=r"api \(pid \d+\) exited with code 3; it died 4 times in a row"):
        _run_until(supervisor, lambda: False)
    assert len([line for line in lines if "restarting it" in line]) == 3


def test_a_start_that_fails_counts_as_a_death():
    def launch():
        raise RuntimeError("no socket")

    supervisor = Supervisor(FAST, log=lambda line: None)
    child = Child("redis", _python("raise SystemExit(1)"))
    supervisor.start(child)
    child.launch = launch
    with pytest.raises(GaveUp, match=r"redis could not be started \(no socket\)"):
        _run_until(supervisor, lambda: False)


def test_exits_read_as_words():
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(2) == "exited with code 2"
