"""GET /v1/jobs/{id}/events: a job's live events as server-sent events.

Order of work on every (re)connect: subscribe to the job's Redis channel
first, then replay from the database what it holds after ``Last-Event-ID``,
then relay live events, dropping any whose id was already sent. Subscribing
before reading is what makes it gap-free: an event is written to the database
before it is published, so it is either in the read or heard on the channel
(or both, and then dropped as a repeat).

A stream holds no database connection between its short reads, and under
gunicorn's gevent worker (service/gunicorn_conf.py) it is a greenlet waiting
on a queue, not a thread. The API process has one Redis pub/sub connection,
shared by all its streams (service/event_hub.py).

Streams are capped per owner and per process (service/stream_slots.py; over a
cap: 429 at once) and live at most ``TRAINRX_STREAM_MAX_S`` (less up to 10 %,
so that streams opened together do not all reconnect together); then the
server ends the stream and the client reconnects with ``Last-Event-ID``.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Iterator

import redis
from flask import Flask, Response, current_app, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from core import events
from core.jobstore import FINISHED
from core.redis_urls import redis_py_url
from core.settings import Settings
from service.auth import current_principal
from service.event_hub import LOST, EventHub
from service.extensions import parts
from service.jobs_api import load_job
from service.quotas import too_many
from service.schemas import JobEventSchema, JobSchema
from service.stream_slots import StreamSlots, StreamsFull

log = logging.getLogger("trainrx.events")

blp = Blueprint("events", __name__, url_prefix="/v1/jobs", description="Live job events")

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and clients from timing out
POLL_S = 2.0  # how often a stream reads the database when Redis does not answer
RETRY_MS = 2000  # the reconnect delay advertised to EventSource clients
LIFETIME_RETRY_MS = 250  # ... and the one sent when a stream reaches its maximum lifetime: come back soon
SLOT_CONNECTIONS = 20  # Redis connections for taking and giving back stream slots, per API process
LIFETIME_JITTER = 0.1  # a stream lives max_s * (1 - up to this fraction)


class Streams:
    """What the streams of one app share: the pub/sub hub and the slots."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        quotas = settings.quotas
        self.max_s = quotas.stream_max_s
        self.hub = EventHub.for_url(redis_py_url(settings.redis_url))
        self.slots = StreamSlots(client, per_owner=quotas.max_streams_per_owner, per_process=quotas.max_streams,
                                 max_lifetime_s=quotas.stream_max_s)


def init_app(app: Flask, settings: Settings) -> None:
    # A burst of streams opening at once waits for one of a few connections, rather than failing
    # (redis-py's default pool raises when it runs out) or opening hundreds.
    pool = redis.BlockingConnectionPool.from_url(redis_py_url(settings.redis_url), max_connections=SLOT_CONNECTIONS,
                                                 timeout=2, socket_timeout=2, socket_connect_timeout=2)
    app.extensions["trainrx_streams"] = Streams(settings, redis.Redis(connection_pool=pool))


def streams() -> Streams:
    return current_app.extensions["trainrx_streams"]


def keepalive_seconds() -> float:
    configured = current_app.config.get("EVENTS_KEEPALIVE_S") or os.environ.get("TRAINRX_EVENTS_KEEPALIVE_S")
    return float(configured) if configured else KEEPALIVE_S


def last_event_id() -> int:
    """The header wins over the query parameter, but each one given must be an event id."""
    given = [_event_id(raw) for raw in (request.headers.get("Last-Event-ID"), request.args.get("last_event_id"))]
    return next((value for value in given if value is not None), -1)


# Event ids are stored and compared as 64-bit integers (epoch rows, status sequence numbers).
MAX_EVENT_ID = 2**63 - 1


def _event_id(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_EVENT_ID:
        abort(400, message="Last-Event-ID must be the id of an event this stream sent (an integer from 0 to "
                           f"{MAX_EVENT_ID}).")
    return value


class _Stream:
    """One client's stream: what it has sent so far and how to send the rest."""

    def __init__(self, job_id: str, after_id: int) -> None:
        p, shared = parts(), streams()
        self.job_id, self.store, self.hub = job_id, p.store, shared.hub
        self.last = after_id
        self.ended = False
        self.keepalive = keepalive_seconds()
        self.lifetime = shared.max_s * (1 - LIFETIME_JITTER * random.random())

    def _emit(self, event: events.JobEvent) -> Iterator[str]:
        if event.id <= self.last or self.ended:
            return
        self.last = event.id
        yield event.sse()
        if event.type == events.STATUS and event.data["status"] in FINISHED:
            job = self.store.get(self.job_id, owner=None)  # the caller's, checked at connect
            if job is not None:
                end = events.JobEvent(events.end_event_id(event.id), events.END,
                                       JobSchema().dump(job))
                self.last = end.id
                yield end.sse()
            self.ended = True

    def _resync(self) -> Iterator[str]:
        job, missed = events.replay(self.store, self.job_id, self.last)
        if job is None:  # deleted under us
            self.ended = True
            return
        for event in missed:
            yield from self._emit(event)

    def _subscribe(self):
        subscription = self.hub.subscribe(events.channel(self.job_id))  # confirmed by Redis, or None
        if subscription is None:  # fall back to reading the database
            log.warning("events of job %s: Redis does not answer; polling the database", self.job_id)
        return subscription

    def __iter__(self) -> Iterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        started = time.monotonic()
        subscription = self._subscribe()
        try:
            yield from self._resync()
            next_beat = started + self.keepalive
            end_by = started + self.lifetime
            while not self.ended:
                now = time.monotonic()
                if now >= end_by:  # the client reconnects with Last-Event-ID, soon
                    yield f": this stream reached its maximum lifetime; reconnect\nretry: {LIFETIME_RETRY_MS}\n\n"
                    return
                wait = max(min(next_beat, end_by) - now, 0.0)
                data = None
                if subscription is not None:
                    data = subscription.get(timeout=wait)
                    if data is LOST:
                        log.warning("events of job %s: lost Redis; polling the database", self.job_id)
                        subscription, data = None, None
                else:
                    time.sleep(min(wait, POLL_S))
                    yield from self._resync()
                if data is not None:
                    event = events.JobEvent.from_message(data)
                    if event.id > self.last + 1:  # something in between may have been missed: read it first
                        yield from self._resync()
                    yield from self._emit(event)
                if not self.ended and time.monotonic() >= next_beat:
                    yield from self._resync()
                    if not self.ended:
                        yield ": keep-alive\n\n"
                    next_beat = time.monotonic() + self.keepalive
        finally:
            if subscription is not None:
                subscription.close()


@blp.route("/<job_id>/events")
class Events(MethodView):
    @blp.doc(parameters=[
        {"in": "header", "name": "Last-Event-ID", "required": False,
         "schema": {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID},
         "description": "Resume after this event id (EventSource sends it on reconnect)."},
        {"in": "query", "name": "last_event_id", "required": False,
         "schema": {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID},
         "description": "The same, for clients that cannot set headers."},
    ])
    @blp.response(200, JobEventSchema, content_type="text/event-stream",
                  description="`status` events (status and timestamps), one `epoch` event per finished epoch "
                              "(that epoch's curves row) and a final `end` event (the finished job). Ids "
                              "increase within the job; a comment line every 15 s keeps the stream alive.")
    @blp.alt_response(400, description="Last-Event-ID is not an event id.")
    @blp.alt_response(404, description="No such job.")
    @blp.alt_response(429, description="The owner has TRAINRX_MAX_STREAMS_PER_OWNER streams open, or this API "
                                       "process TRAINRX_MAX_STREAMS (or the rate limit is reached); retry after "
                                       "`Retry-After` seconds.")
    def get(self, job_id: str):
        """Follow a job live (server-sent events).

        A stream ends after the server's maximum lifetime; reconnect with `Last-Event-ID`."""
        load_job(job_id)
        after = last_event_id()
        try:
            slot = streams().slots.acquire(current_principal().owner)
        except StreamsFull as exc:
            # A slot held by a client that went away frees at the stream's next write: a keep-alive at most.
            too_many(str(exc), keepalive_seconds())
        try:
            response = Response(stream_with_context(iter(_Stream(job_id, after))), mimetype="text/event-stream",
                                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            response.call_on_close(slot.release)  # however the response ends, started or not
        except BaseException:
            slot.release()
            raise
        return response
