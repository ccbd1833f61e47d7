"""Live job events: their ids, the messages workers publish over Redis pub/sub,
and their replay from the database.

Redis pub/sub cannot replay, so every event a stream sends must also be
rebuildable from the database. That is why ids are *derived from state*, not
counted: within attempt ``a`` (the job row's ``attempts``, bumped at every start)

=====================================  ==================================
event                                  id
=====================================  ==================================
``status`` queued (never started)      ``0``
``status`` running                     ``a * STRIDE``
``epoch`` e                            ``a * STRIDE + e``
``status`` queued (requeued)           ``a * STRIDE + STRIDE - 3``
``status`` succeeded/failed/cancelled  ``a * STRIDE + STRIDE - 2``
``end`` (the finished job)             ``a * STRIDE + STRIDE - 1``
=====================================  ==================================

Ids increase within a job; the same event always gets the same id whether a
stream reads it from the database or hears it live, so a stream drops what it
has already sent (``id <= last``) and never repeats or skips. A requeued job
starts a new attempt with new (higher) ids; the epochs of the abandoned attempt
are gone from the database, as they are from the job.

Publishing is best effort: the database stays the truth, and streams re-read it
whenever a live event does not follow the last one they sent and on every
keep-alive tick, so a lost message only delays an event.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import redis

from core.jobstore import FINISHED, QUEUED, RUNNING, JobStore
from core.jsonsafe import json_safe
from core.redis_urls import redis_py_url

log = logging.getLogger("trainrx.events")

EVENT_ID_STRIDE = 1_000_000_000  # ids per attempt; far above any epoch count the limits allow
CHANNEL_PREFIX = "trainrx:events:"
STATUS, EPOCH, END = "status", "epoch", "end"


@dataclass(frozen=True)
class JobEvent:
    id: int
    type: str
    data: dict

    def message(self) -> str:
        """The pub/sub message body."""
        return json.dumps({"id": self.id, "type": self.type, "data": self.data}, separators=(",", ":"))

    @classmethod
    def from_message(cls, raw: bytes | str) -> "JobEvent":
        body = json.loads(raw)
        return cls(int(body["id"]), str(body["type"]), body["data"])

    def sse(self) -> str:
        """The event in text/event-stream framing (JSON data fits on one line)."""
        data = json.dumps(self.data, separators=(",", ":"), allow_nan=False)
        return f"id: {self.id}\nevent: {self.type}\ndata: {data}\n\n"


def channel(job_id: str) -> str:
    return f"{CHANNEL_PREFIX}{job_id}"


def status_event_id(status: str, attempt: int) -> int:
    base = attempt * EVENT_ID_STRIDE
    if status == QUEUED:
        return 0 if attempt == 0 else base + EVENT_ID_STRIDE - 3
    if status == RUNNING:
        return base
    if status in FINISHED:
        return base + EVENT_ID_STRIDE - 2
    raise ValueError(f"unknown status {status!r}")


def epoch_event_id(attempt: int, epoch: int) -> int:
    return attempt * EVENT_ID_STRIDE + epoch


def end_event_id(attempt: int) -> int:
    return attempt * EVENT_ID_STRIDE + EVENT_ID_STRIDE - 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_event(job: dict) -> JobEvent:
    """The ``status`` event of a job row: its status and timestamps."""
    attempt = int(job.get("attempts") or 0)
    data = {"job_id": job["id"], "status": job["status"], "attempt": attempt,
            "created_at": _iso(job["created_at"]), "started_at": _iso(job["started_at"]),
            "finished_at": _iso(job["finished_at"])}
    return JobEvent(status_event_id(job["status"], attempt), STATUS, data)


def epoch_event(attempt: int, row: dict) -> JobEvent:
    """The ``epoch`` event of one curves row, as the job store keeps it."""
    return JobEvent(epoch_event_id(attempt, int(row["epoch"])), EPOCH, json_safe(row))


def events_from_state(job: dict, epochs: list[dict]) -> list[JobEvent]:
    """The events of the job's current attempt that the database can rebuild, in id
    order (``end`` is the API's to render, after the final ``status``)."""
    attempt = int(job.get("attempts") or 0)
    if job["status"] == QUEUED:
        return [status_event(job)]
    if attempt == 0:  # cancelled before it ever started
        return [status_event(job)]
    running = status_event({**job, "status": RUNNING, "finished_at": None})
    out = [running, *(epoch_event(attempt, row) for row in epochs)]
    if job["status"] in FINISHED:
        out.append(status_event(job))
    return out


def replay(store: JobStore, job_id: str, after_id: int) -> tuple[dict | None, list[JobEvent]]:
    """The job row and its events with ids above ``after_id``, read from the database.

    The epochs are read between two reads of the job row; when a new attempt
    started in between (the epochs may then be the new attempt's), read again.
    """
    for _ in range(5):
        before = store.get(job_id, owner=None)
        if before is None:
            return None, []
        attempt = int(before["attempts"] or 0)
        base = attempt * EVENT_ID_STRIDE
        after_epoch = after_id - base if base <= after_id < base + EVENT_ID_STRIDE else 0
        epochs = store.epochs(job_id, after=max(after_epoch, 0)) if attempt > 0 else []
        job = store.get(job_id, owner=None)
        if job is None:
            return None, []
        if int(job["attempts"] or 0) == attempt:
            return job, [e for e in events_from_state(job, epochs) if e.id > after_id]
    return job, []


class EventPublisher:
    """What a worker (or the API, for a cancel) tells the streams. Never raises:
    a stream that misses a message finds the event in the database."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @classmethod
    @lru_cache(maxsize=4)
    def for_url(cls, redis_url: str) -> "EventPublisher":
        return cls(redis.Redis.from_url(redis_py_url(redis_url), socket_timeout=2, socket_connect_timeout=2))

    def publish(self, job_id: str, event: JobEvent) -> None:
        try:
            self.client.publish(channel(job_id), event.message())
        except Exception:  # noqa: BLE001 — best effort by design
            log.warning("could not publish %s event %s of job %s", event.type, event.id, job_id, exc_info=True)

    def status(self, job: dict | None) -> None:
        """Publish the job's current status (after any status change)."""
        if job is not None:
            self.publish(job["id"], status_event(job))

    def epoch(self, job_id: str, attempt: int, row: dict) -> None:
        self.publish(job_id, epoch_event(attempt, row))


class JobEvents:
    """The events of one attempt at one job, as the worker running it publishes them."""

    def __init__(self, publisher: EventPublisher, job_id: str, attempt: int) -> None:
        self.publisher, self.job_id, self.attempt = publisher, job_id, attempt

    @classmethod
    def started(cls, redis_url: str, job: dict) -> "JobEvents":
        """Call right after the job turned running: publishes that status."""
        events = cls(EventPublisher.for_url(redis_url), job["id"], int(job["attempts"]))
        events.publisher.status(job)
        return events

    def epoch(self, row: dict) -> None:
        """Call after the epoch's row is in the database."""
        self.publisher.epoch(self.job_id, self.attempt, row)

    def settled(self, store: JobStore) -> None:
        """Call when the worker is done with the job: publishes where it ended
        (finished, or back in the queue)."""
        try:
            job = store.get(self.job_id, owner=None)
        except Exception:  # noqa: BLE001 — streams find the status in the database later
            log.warning("could not read job %s to publish its status", self.job_id, exc_info=True)
            return
        if job is not None and job["status"] != RUNNING:
            self.publisher.status(job)


def publish_status(client: Any, job: dict | None) -> None:
    """For the API, which already holds a Redis client."""
    EventPublisher(client).status(job)
