"""GET /v1/jobs/{id}/events: a job's live events as server-sent events.

Order of work on every (re)connect: subscribe to the job's Redis channel
first, then replay from the database what it holds after ``Last-Event-ID``,
then relay live events, dropping any whose id was already sent. Subscribing
before reading is what makes it gap-free: an event is written to the database
before it is published, so it is either in the read or heard on the channel
(or both, and then dropped as a repeat).

A stream holds no database connection between its short reads, and under
gunicorn's gevent worker (service/gunicorn_conf.py) it is a greenlet waiting
on a socket, not a thread.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Iterator

from flask import Response, current_app, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from core import events
from core.jobstore import FINISHED
from service.extensions import parts
from service.jobs_api import load_job
from service.schemas import JobEventSchema, JobSchema

log = logging.getLogger("trainrx.events")

blp = Blueprint("events", __name__, url_prefix="/v1/jobs", description="Live job events")

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and clients from timing out
POLL_S = 2.0  # how often a stream reads the database when Redis does not answer
RETRY_MS = 2000  # the reconnect delay advertised to EventSource clients


def keepalive_seconds() -> float:
    configured = current_app.config.get("EVENTS_KEEPALIVE_S") or os.environ.get("TRAINRX_EVENTS_KEEPALIVE_S")
    return float(configured) if configured else KEEPALIVE_S


def last_event_id() -> int:
    """The header wins over the query parameter, but each one given must be an event id."""
    given = [_event_id(raw) for raw in (request.headers.get("Last-Event-ID"), request.args.get("last_event_id"))]
    return next((value for value in given if value is not None), -1)


def _event_id(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        abort(400, message="Last-Event-ID must be the id of an event this stream sent (an integer >= 0).")
    return value


class _Stream:
    """One client's stream: what it has sent so far and how to send the rest."""

    def __init__(self, job_id: str, after_id: int) -> None:
        p = parts()
        self.job_id, self.store, self.redis = job_id, p.store, p.redis
        self.last = after_id
        self.ended = False
        self.keepalive = keepalive_seconds()

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
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(events.channel(self.job_id))
            return pubsub
        except Exception:  # noqa: BLE001 — fall back to reading the database
            log.warning("events of job %s: Redis does not answer; polling the database", self.job_id)
            pubsub.close()
            return None

    def __iter__(self) -> Iterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        pubsub = self._subscribe()
        try:
            yield from self._resync()
            next_beat = time.monotonic() + self.keepalive
            while not self.ended:
                wait = max(next_beat - time.monotonic(), 0.0)
                message = None
                if pubsub is not None:
                    try:
                        message = pubsub.get_message(timeout=wait)
                    except Exception:  # noqa: BLE001
                        log.warning("events of job %s: lost Redis; polling the database", self.job_id)
                        pubsub.close()
                        pubsub = None
                else:
                    time.sleep(min(wait, POLL_S))
                    yield from self._resync()
                if message is not None and message.get("type") == "message":
                    event = events.JobEvent.from_message(message["data"])
                    if event.id > self.last + 1:  # something in between may have been missed: read it first
                        yield from self._resync()
                    yield from self._emit(event)
                if not self.ended and time.monotonic() >= next_beat:
                    yield from self._resync()
                    if not self.ended:
                        yield ": keep-alive\n\n"
                    next_beat = time.monotonic() + self.keepalive
        finally:
            if pubsub is not None:
                pubsub.close()


@blp.route("/<job_id>/events")
class Events(MethodView):
    @blp.doc(parameters=[
        {"in": "header", "name": "Last-Event-ID", "required": False, "schema": {"type": "integer", "minimum": 0},
         "description": "Resume after this event id (EventSource sends it on reconnect)."},
        {"in": "query", "name": "last_event_id", "required": False, "schema": {"type": "integer", "minimum": 0},
         "description": "The same, for clients that cannot set headers."},
    ])
    @blp.response(200, JobEventSchema, content_type="text/event-stream",
                  description="`status` events (status and timestamps), one `epoch` event per finished epoch "
                              "(that epoch's curves row) and a final `end` event (the finished job). Ids "
                              "increase within the job; a comment line every 15 s keeps the stream alive.")
    @blp.alt_response(400, description="Last-Event-ID is not an event id.")
    @blp.alt_response(404, description="No such job.")
    def get(self, job_id: str):
        """Follow a job live (server-sent events)."""
        load_job(job_id)
        stream = _Stream(job_id, last_event_id())
        return Response(stream_with_context(iter(stream)), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
