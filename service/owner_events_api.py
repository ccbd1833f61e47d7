"""GET /v1/events: all of the caller's jobs, live, in one stream (the dashboard's job list).

Each event is a ``job`` card (status, progress, latest metrics, verdict) sent
when one of the owner's jobs changes, or ``deleted``. A card carries
``event_id``: the id of the job's newest event on its own stream
(``GET /v1/jobs/{id}/events``, docs/events.md), so cards of one job only ever
grow, and a client can drop a card it has already seen.

Resuming: the stream's event id is a *cursor* that says what the client has,
``<ms>.<job id>-<event id>.<job id>-<event id>...``: when it was made, and the
newest event id of every job that could still change or has just changed (the
owner's queued and running jobs, and those created or finished within
``GRACE_S`` before it). A job outside that window finished before it and has
not changed since. On (re)connect the stream subscribes first (one Redis
pattern subscription per API process, shared: service/event_hub.py), then reads
the window from the database and sends a card for every job whose newest event
id is above the cursor's (or that the cursor lacks), and ``deleted`` for a job
the cursor names that is gone. It reads again whenever one of the owner's jobs
publishes an event, and on every keep-alive tick; so, as on the per-job
stream, a lost message delays a card and never loses one. ``GRACE_S`` covers
clocks that differ between processes and commits that land late.

Without a cursor the stream starts with a card for every job in the window.
A dashboard page renders its list and passes the cursor it was rendered at
(``?last_event_id=``), so nothing between the render and the connect is missed.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

from flask import Response, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate

from core import events
from core.jobstore import FINISHED, QUEUED, RUNNING, WINDOW_LIMIT, JobStore
from core.jsonsafe import json_safe
from service.auth import current_principal
from service.event_hub import LOST
from service.events_api import (LIFETIME_JITTER, LIFETIME_RETRY_MS, POLL_S, RETRY_MS, keepalive_seconds, streams)
from service.extensions import parts
from service.quotas import too_many
from service.stream_slots import StreamsFull

log = logging.getLogger("trainrx.events")

blp = Blueprint("owner_events", __name__, url_prefix="/v1", description="Live job events")

JOB, DELETED = "job", "deleted"
GRACE_S = 30.0  # a change stamped this long before a cursor is still looked for after it
MAX_TRACKED = 150  # jobs named in one cursor (~6 KB); past it the oldest finished ones are left out
MAX_CURSOR_CHARS = 16_000
CARD_METRICS = ("val_accuracy", "val_r2", "val_loss")  # a card's metric: the first the summary has
MAX_CURSOR_AHEAD_S = 86_400  # a cursor's time may run ahead of this server's clock by this much, no more
BAD_CURSOR = "Last-Event-ID must be an id this stream sent: <ms>.<job id>-<event id>..."
_FOREIGN_MAX = 10_000  # other owners' job ids a stream remembers, so as not to read the database for them
_PAIR = re.compile(r"^([0-9a-f]{32})-([0-9]{1,15})$")


def job_event_id(job: dict) -> int:
    """The id of the job's newest event on its own stream (the ``end`` event once finished)."""
    status_id = events.status_event(job).id
    newest = max(status_id, events.epoch_event_id(int(job.get("progress_epoch") or 0)))
    return events.end_event_id(status_id) if job["status"] in FINISHED else newest


def job_card(job: dict) -> dict:
    """What a list of jobs shows of one job; the dashboard renders the same dict."""
    summary = job.get("summary") or {}
    metric = next(((key, summary[key]) for key in CARD_METRICS if summary.get(key) is not None),
                  (None, None))
    return json_safe({
        "job_id": job["id"], "event_id": job_event_id(job), "name": job.get("name"), "status": job["status"],
        "progress": {"epoch": int(job.get("progress_epoch") or 0), "epochs": job["request"].get("epochs")},
        "verdict": (job.get("diagnosis") or {}).get("verdict"),
        "metric": {"name": metric[0], "value": metric[1],
                   "epoch": summary.get("returned_epoch") or summary.get("epochs_run")} if metric[0] else None,
        "created_at": _iso(job["created_at"]), "finished_at": _iso(job.get("finished_at")),
    })


def _sse(event_id: str, kind: str, data: dict) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'), allow_nan=False)}\n\n"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class Cursor:
    """What a client has: when the cursor was made, and the newest event id of each job in the window."""

    at_ms: int
    known: dict[str, int] = field(default_factory=dict)

    def encode(self) -> str:
        return ".".join([str(self.at_ms), *(f"{job_id}-{event_id}" for job_id, event_id in self.known.items())])

    @classmethod
    def decode(cls, raw: str) -> "Cursor":
        head, *pairs = raw.strip().split(".")
        matches = [_PAIR.match(pair) for pair in pairs]
        if len(raw) > MAX_CURSOR_CHARS or not head.isdigit() or len(head) > 15 or not all(matches):
            abort(400, message=BAD_CURSOR)
        cursor = cls(int(head), {m.group(1): int(m.group(2)) for m in matches})
        try:  # a time this server could have sent: one that converts, and not in the future (a day of slack)
            cursor.since()
        except (ValueError, OverflowError, OSError):
            abort(400, message=BAD_CURSOR)
        if cursor.at_ms > (time.time() + MAX_CURSOR_AHEAD_S) * 1000:
            abort(400, message=BAD_CURSOR)
        return cursor

    def since(self) -> datetime:
        return datetime.fromtimestamp(self.at_ms / 1000, timezone.utc) - timedelta(seconds=GRACE_S)


def window_cursor(jobs: list[dict], now: datetime) -> Cursor:
    """The cursor for a client that has every job of ``jobs`` as read at ``now``."""
    floor = now - timedelta(seconds=GRACE_S)

    def in_window(job: dict) -> bool:
        return (job["status"] in (QUEUED, RUNNING) or job["created_at"] > floor
                or (job.get("finished_at") is not None and job["finished_at"] > floor))

    kept = sorted((j for j in jobs if in_window(j)),  # in flight first, then the newest
                  key=lambda j: (j["status"] in FINISHED, -j["created_at"].timestamp()))[:MAX_TRACKED]
    kept.sort(key=lambda j: (j["created_at"], j["id"]))
    return Cursor(int(now.timestamp() * 1000), {j["id"]: job_event_id(j) for j in kept})


def current_cursor(store: JobStore, owner: str) -> Cursor:
    """A cursor for a page about to render the owner's jobs: read before the page reads them,
    so the page is never older than the cursor it hands to the stream."""
    now = datetime.now(timezone.utc)
    return window_cursor(store.in_flight_or_since(owner, now - timedelta(seconds=GRACE_S)), now)


def _cursor_arg() -> Cursor | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    return Cursor.decode(raw) if raw and raw.strip() else None


class _OwnerStream:
    def __init__(self, owner: str, cursor: Cursor | None) -> None:
        shared = streams()
        self.owner, self.store, self.hub = owner, parts().store, shared.hub
        self.cursor = cursor or Cursor(int(time.time() * 1000))
        self.foreign: set[str] = set()
        self.keepalive = keepalive_seconds()
        self.lifetime = shared.max_s * (1 - LIFETIME_JITTER * random.random())

    def _scan(self) -> Iterator[str]:
        """Read the window and send what the client lacks; each event's id is a cursor valid after it."""
        now = datetime.now(timezone.utc)
        rows = self.store.in_flight_or_since(self.owner, self.cursor.since(), limit=WINDOW_LIMIT)
        seen = {row["id"] for row in rows}
        # A job missing from a full window may only be older than its newest WINDOW_LIMIT: not deleted.
        complete = len(rows) < WINDOW_LIMIT
        changed = [(DELETED, {"job_id": job_id}) for job_id in self.cursor.known if complete and job_id not in seen]
        changed += [(JOB, job_card(row)) for row in rows
                    if job_event_id(row) > self.cursor.known.get(row["id"], -1)]
        known = dict(self.cursor.known)
        for index, (kind, data) in enumerate(changed):
            if kind == DELETED:
                known.pop(data["job_id"], None)
            else:
                known[data["job_id"]] = data["event_id"]
            last = index == len(changed) - 1
            self.cursor = window_cursor(rows, now) if last else Cursor(self.cursor.at_ms, known)
            yield _sse(self.cursor.encode(), kind, data)
        self.foreign.difference_update(seen)

    def _concerns_owner(self, message) -> bool:
        channel, _data = message
        job_id = channel.decode() if isinstance(channel, bytes) else channel
        job_id = job_id.removeprefix(events.CHANNEL_PREFIX)
        if job_id in self.cursor.known or job_id not in self.foreign:
            if job_id not in self.cursor.known and len(self.foreign) < _FOREIGN_MAX:
                self.foreign.add(job_id)  # taken back by the scan when it is the owner's after all
            return True
        return False

    def __iter__(self) -> Iterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        started = time.monotonic()
        subscription = self.hub.subscribe(events.CHANNEL_PREFIX + "*", pattern=True)
        if subscription is None:
            log.warning("events of owner %s: Redis does not answer; polling the database", self.owner)
        try:
            yield from self._scan()
            next_beat, end_by = started + self.keepalive, started + self.lifetime
            while True:
                now = time.monotonic()
                if now >= end_by:
                    yield f": this stream reached its maximum lifetime; reconnect\nretry: {LIFETIME_RETRY_MS}\n\n"
                    return
                wait = max(min(next_beat, end_by) - now, 0.0)
                relevant = False
                if subscription is not None:
                    message = subscription.get(timeout=wait)
                    while message is not None and message is not LOST:
                        relevant = self._concerns_owner(message) or relevant
                        message = subscription.get(timeout=0)  # take what else is there: one read for all
                    if message is LOST:
                        log.warning("events of owner %s: lost Redis; polling the database", self.owner)
                        subscription, relevant = None, True
                else:
                    time.sleep(min(wait, POLL_S))
                    relevant = True
                if relevant:
                    yield from self._scan()
                if time.monotonic() >= next_beat:
                    yield from self._scan()
                    yield ": keep-alive\n\n"
                    next_beat = time.monotonic() + self.keepalive
        finally:
            if subscription is not None:
                subscription.close()


class OwnerEventSchema(Schema):
    """One server-sent event of GET /v1/events, as an EventSource client sees it."""

    event = fields.String(required=True, validate=validate.OneOf([JOB, DELETED]))
    id = fields.String(metadata={"description": "A cursor, `<ms>.<job id>-<event id>...`: send it back as "
                                                "Last-Event-ID to resume."})
    data = fields.String(required=True, metadata={
        "description": "JSON. `job`: `job_id`, `event_id` (the id of the job's newest event on "
                       "GET /v1/jobs/{id}/events), `name`, `status`, `progress` {epoch, epochs}, `verdict`, "
                       "`metric` {name, value, epoch} (the validation metric of the returned epoch; the latest "
                       "while it runs), `created_at`, `finished_at`. `deleted`: `job_id`."})
    retry = fields.Integer(metadata={"description": "The reconnect delay in milliseconds."})


@blp.route("/events")
class OwnerEvents(MethodView):
    @blp.doc(parameters=[
        {"in": "header", "name": "Last-Event-ID", "required": False, "schema": {"type": "string"},
         "description": "Resume after this event (EventSource sends it on reconnect)."},
        {"in": "query", "name": "last_event_id", "required": False, "schema": {"type": "string"},
         "description": "The same, for clients that cannot set headers (a page passes the cursor it was "
                        "rendered at)."},
    ])
    @blp.response(200, OwnerEventSchema, content_type="text/event-stream",
                  description="A `job` event whenever one of your jobs changes (status, an epoch, the verdict), "
                              "`deleted` when one is deleted; without Last-Event-ID it starts with your queued and "
                              "running jobs. A comment line every 15 s keeps the stream alive.")
    @blp.alt_response(400, description="Last-Event-ID is not an id this stream sent.")
    @blp.alt_response(429, description="The owner has TRAINRX_MAX_STREAMS_PER_OWNER streams open, or this API "
                                       "process TRAINRX_MAX_STREAMS (or the rate limit is reached); retry after "
                                       "`Retry-After` seconds.")
    def get(self):
        """Follow all your jobs live (server-sent events): one stream for a list of jobs.

        A stream ends after the server's maximum lifetime; reconnect with `Last-Event-ID`."""
        cursor = _cursor_arg()
        owner = current_principal().owner
        try:
            slot = streams().slots.acquire(owner)
        except StreamsFull as exc:
            too_many(str(exc), keepalive_seconds())
        try:
            response = Response(stream_with_context(iter(_OwnerStream(owner, cursor))),
                                mimetype="text/event-stream",
                                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            response.call_on_close(slot.release)
        except BaseException:
            slot.release()
            raise
        return response
