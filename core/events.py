"""Live job events: their ids, the messages workers publish over Redis pub/sub,
and their replay from the database.

Redis pub/sub cannot replay, so every event a stream sends must also be
rebuildable from the database. That is why ids are *derived from state*, not
counted. Every status change bumps the job row's ``status_seq`` (s) and records
``status_high`` (h), the highest epoch reached before it; ``STRIDE`` is 10^6:

=====================================  ==================================
event                                  id
=====================================  ==================================
``status`` queued (never started)      ``0``
``epoch`` e                            ``e * STRIDE``
``status`` (any change)                ``h * STRIDE + s``
``end`` (the finished job)             the final ``status`` id ``+ 1``
=====================================  ==================================

Ids increase within a job; the same event always gets the same id whether a
stream reads it from the database or hears it live, so a stream drops what it
has already sent (``id <= last``) and never repeats or skips. An epoch's id
does not depend on the run that trained it: when a job whose worker was lost
resumes from a checkpoint at epoch k, the epochs after k that are trained again
keep their ids, and a client that already had them does not get them twice
(on CPU they are bit-equal; on CUDA the new values replace the old ones in the
database, but a client that saw the first ones is not sent the second). A
status change after epoch h sorts after every epoch up to h and before h + 1,
and ``s`` only grows, so a job that is re-queued and restarted without making
progress still gets new, higher ids.

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

from core.jobstore import RUNNING, JobStore
from core.jsonsafe import json_safe
from core.redis_urls import redis_py_url

log = logging.getLogger("trainrx.events")

EVENT_ID_STRIDE = 1_000_000  # status changes per epoch slot; far above what one job makes
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


def status_event_id(status_high: int, status_seq: int) -> int:
    return status_high * EVENT_ID_STRIDE + status_seq


def epoch_event_id(epoch: int) -> int:
    return epoch * EVENT_ID_STRIDE


def end_event_id(status_id: int) -> int:
    """The ``end`` event follows the final ``status`` event."""
    return status_id + 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_event(job: dict) -> JobEvent:
    """The ``status`` event of a job row: its status, timestamps and lost workers so far."""
    data = {"job_id": job["id"], "status": job["status"], "attempts": int(job.get("attempts") or 0),
            "created_at": _iso(job["created_at"]), "started_at": _iso(job["started_at"]),
            "finished_at": _iso(job["finished_at"])}
    return JobEvent(status_event_id(int(job.get("status_high") or 0), int(job.get("status_seq") or 0)), STATUS,
                    data)


def epoch_event(row: dict) -> JobEvent:
    """The ``epoch`` event of one curves row, as the job store keeps it."""
    return JobEvent(epoch_event_id(int(row["epoch"])), EPOCH, json_safe(row))


def events_from_state(job: dict, epochs: list[dict]) -> list[JobEvent]:
    """The events the database can rebuild, in id order: the start of the current run,
    every epoch it holds, and the job's current status (``end`` is the API's to render,
    after a final ``status``)."""
    out = [*(epoch_event(row) for row in epochs), status_event(job)]
    if int(job.get("run") or 0) > 0 and job["status"] != RUNNING:
        out.append(status_event({**job, "status": RUNNING, "finished_at": None,
                                 "status_seq": job["run_status_seq"], "status_high": job["run_status_high"]}))
    return sorted(out, key=lambda e: e.id)


def replay(store: JobStore, job_id: str, after_id: int) -> tuple[dict | None, list[JobEvent]]:
    """The job row and its events with ids above ``after_id``, read from the database.

    The epochs are read between two reads of the job row; when its status changed in
    between (a new run may have rewound the epochs), read again.
    """
    job = None
    for _ in range(5):
        before = store.get(job_id, owner=None)
        if before is None:
            return None, []
        epochs = store.epochs(job_id, after=max(after_id // EVENT_ID_STRIDE, 0))
        job = store.get(job_id, owner=None)
        if job is None:
            return None, []
        if job["status_seq"] == before["status_seq"]:
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

    def epoch(self, job_id: str, row: dict) -> None:
        self.publish(job_id, epoch_event(row))


class JobEvents:
    """The events of one run of one job, as the worker running it publishes them."""

    def __init__(self, publisher: EventPublisher, job_id: str) -> None:
        self.publisher, self.job_id = publisher, job_id

    @classmethod
    def started(cls, redis_url: str, job: dict) -> "JobEvents":
        """Call right after the job turned running: publishes that status."""
        events = cls(EventPublisher.for_url(redis_url), job["id"])
        events.publisher.status(job)
        return events

    def epoch(self, row: dict) -> None:
        """Call after the epoch's row is in the database."""
        self.publisher.epoch(self.job_id, row)

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
