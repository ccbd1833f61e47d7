"""Drain workers: they finish the job they run and take no new one.

    python -m workers.drain drain   (--worker NAME ... | --all) [--wait] [--timeout 3600]
    python -m workers.drain undrain (--worker NAME ... | --all)
    python -m workers.drain status

A worker's NAME is its Celery hostname (``cpu@a1b2c3``, as ``status`` lists them).
Draining uses Celery's remote control: ``cancel_consumer`` for each queue the worker
consumes, so the broker delivers it nothing more (prefetch is one message, the one
it runs). The queues are remembered in Redis (``trainrx:draining:<name>``), so
that ``undrain`` (``add_consumer``) gives them back, and a drained worker that
restarts stays drained. ``--wait`` returns once every drained worker answers that it runs no job
(one that does not answer is waited for):
then stopping them (SIGTERM, ``docker compose stop``) hands nothing back.

Needs only REDIS_URL (no database, no torch): run it from any API or worker host.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import redis
from celery import Celery

from core.cluster_metrics import DRAINING_PREFIX, draining_workers, live_workers
from core.queueing import make_celery
from core.redis_urls import redis_py_url
from core.settings import Settings

REPLY_TIMEOUT_S = 5.0


class DrainError(Exception):
    """A named worker is not alive, or did not answer."""


class Drainer:
    def __init__(self, celery: Celery, client: redis.Redis) -> None:
        self.celery, self.client = celery, client

    def targets(self, names: list[str] | None) -> list[str]:
        alive = live_workers(self.client)
        if not names:
            return alive
        missing = sorted(set(names) - set(alive))
        if missing:
            raise DrainError(f"no live worker named {', '.join(missing)} (live: {', '.join(alive) or 'none'})")
        return names

    def _inspect(self, names: list[str]):
        return self.celery.control.inspect(destination=names, timeout=REPLY_TIMEOUT_S, limit=len(names))

    def drain(self, names: list[str]) -> dict[str, list[str]]:
        """Stop each worker consuming; returns the queues each one gave up."""
        consuming = self._inspect(names).active_queues() or {}
        silent = sorted(set(names) - set(consuming))
        if silent:
            raise DrainError(f"no answer from {', '.join(silent)}")
        drained = {}
        for name in names:
            key = f"{DRAINING_PREFIX}{name}"
            queues = [q["name"] for q in consuming[name]]
            if not queues and self.client.exists(key):  # drained already: keep what it gave up
                drained[name] = json.loads(self.client.get(key))["queues"]
                continue
            self.client.set(key, json.dumps({"queues": queues, "since": time.time()}))
            for queue in queues:
                self.celery.control.cancel_consumer(queue, destination=[name], reply=True,
                                                    timeout=REPLY_TIMEOUT_S, limit=1)
            drained[name] = queues
        return drained

    def undrain(self, names: list[str]) -> dict[str, list[str]]:
        resumed = {}
        for name in names:
            key = f"{DRAINING_PREFIX}{name}"
            raw = self.client.get(key)
            queues = json.loads(raw)["queues"] if raw else []
            for queue in queues:
                self.celery.control.add_consumer(queue, destination=[name], reply=True,
                                                 timeout=REPLY_TIMEOUT_S, limit=1)
            self.client.delete(key)
            resumed[name] = queues
        return resumed

    def running(self, names: list[str]) -> dict[str, int | None]:
        """Jobs each worker runs now; None for one that did not answer."""
        active = self._inspect(names).active() or {}
        return {name: len(active[name]) if name in active else None for name in names}

    def wait_idle(self, names: list[str], timeout_s: float, poll_s: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            if all_idle(self.running(names)):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)


def all_idle(running: dict[str, int | None]) -> bool:
    """Every worker answered and runs no job. One that did not answer (busy, or its reply
    lost) may still be running one, so stopping it now could hand that job back."""
    return all(count == 0 for count in running.values())


def busy(running: dict[str, int | None]) -> str:
    """The workers that are not idle, for a person: ``cpu@a (1 job), cpu@b (no answer)``."""
    return ", ".join(f"{name} ({'no answer' if count is None else f'{count} job' + 's' * (count != 1)})"
                     for name, count in running.items() if count != 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workers.drain", description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    for action, what in (("drain", "take no new job"), ("undrain", "take jobs again")):
        sub = actions.add_parser(action, help=f"the named workers {what}")
        which = sub.add_mutually_exclusive_group(required=True)
        which.add_argument("--worker", action="append", metavar="NAME", help="a worker's name (repeatable)")
        which.add_argument("--all", action="store_true", help="every live worker")
        if action == "drain":
            sub.add_argument("--wait", action="store_true", help="return once they run no job")
            sub.add_argument("--timeout", type=float, default=3600.0, help="how long --wait waits (s)")
    actions.add_parser("status", help="live workers, and which are drained")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    client = redis.Redis.from_url(redis_py_url(settings.redis_url), socket_timeout=5, socket_connect_timeout=5)
    drainer = Drainer(make_celery(settings), client)
    try:
        if args.action == "status":
            drained = set(draining_workers(client))
            for name in live_workers(client):
                print(f"{name}\t{'drained' if name in drained else 'taking jobs'}")
            return 0
        names = drainer.targets(None if args.all else args.worker)
        if not names:
            print("no live worker", file=sys.stderr)
            return 1
        if args.action == "undrain":
            for name, queues in drainer.undrain(names).items():
                print(f"{name}: takes jobs again from {', '.join(queues) or 'no queue (it was not drained)'}")
            return 0
        for name, queues in drainer.drain(names).items():
            print(f"{name}: drained (gave up {', '.join(queues) or 'nothing'})")
        if args.wait:
            if not drainer.wait_idle(names, args.timeout):
                print(f"not idle after {args.timeout:.0f} s: {busy(drainer.running(names))}", file=sys.stderr)
                return 1
            print("no drained worker runs a job; they can be stopped")
        return 0
    except DrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
