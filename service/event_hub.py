"""One Redis pub/sub connection per API process, shared by every open event stream.

A dispatcher (a thread; a greenlet once gunicorn's gevent worker has patched
``threading``) reads that connection and hands each message to the queues of
the streams that follow its job. The connection is subscribed to the channels
of the jobs followed right now: the first stream of a job subscribes, the last
one to leave unsubscribes.

The streams' promise (subscribe first, then replay from the database; see
service/events_api.py) needs ``subscribe()`` to return only once Redis has
*confirmed* the subscription. Redis answers a connection's commands in order,
so the n-th ``subscribe`` confirmation of a channel answers the n-th SUBSCRIBE
sent for it: each channel keeps a first-in first-out list of the SUBSCRIBEs
awaiting theirs.

A subscription may also name a *pattern* (``PSUBSCRIBE``): the owner-level
stream (service/owner_events_api.py) follows every job's channel through one
pattern and is handed ``(channel, data)`` pairs. Patterns keep their own
bookkeeping (Redis confirms them with ``psubscribe``), so a pattern and a channel
of the same name never meet.

When the connection fails the hub tells every stream (they read the database
every few seconds instead, as before) and forgets its subscriptions; the next
``subscribe()`` opens a fresh connection. redis-py's own reconnect-and-resubscribe
is turned off, since it would send SUBSCRIBEs this bookkeeping did not count.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("trainrx.events")

LOST = object()  # what a subscription yields once the shared connection has failed
QUEUE_SIZE = 256  # messages waiting for one stream; past it they are dropped and the stream re-reads the database
CONFIRM_TIMEOUT_S = 2.0
CHANNEL, PATTERN = "channel", "pattern"  # what a subscription names; Redis confirms each kind apart
READ_TIMEOUT_S = 1.0  # how often the idle dispatcher looks up


class Subscription:
    """One stream's share of the connection: the messages of one job's channel (or, for a
    pattern, ``(channel, data)`` of every channel it matches)."""

    def __init__(self, hub: "EventHub", channel: str, pattern: bool = False) -> None:
        self.hub, self.channel, self.pattern = hub, channel, pattern
        self.key = (PATTERN if pattern else CHANNEL, channel)
        self.messages: queue.Queue = queue.Queue(QUEUE_SIZE)
        self.lost = False
        self.dropped = 0

    def get(self, timeout: float):
        """The next message's data, None when none came within ``timeout``, or LOST."""
        if self.lost:
            return LOST
        try:
            item = self.messages.get(timeout=timeout)
        except queue.Empty:
            return LOST if self.lost else None
        return LOST if item is LOST else item

    def _offer(self, item) -> None:
        try:
            self.messages.put_nowait(item)
        except queue.Full:
            self.dropped += 1  # the stream notices the gap in ids and reads the database

    def close(self) -> None:
        self.hub.unsubscribe(self)


@dataclass
class _Channel:
    subscribers: set = field(default_factory=set)
    ready: threading.Event = field(default_factory=threading.Event)


class EventHub:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._pubsub = None
        self._channels: dict[tuple[str, str], _Channel] = {}  # (CHANNEL or PATTERN, name) -> its streams
        self._awaiting: dict[tuple[str, str], deque[_Channel]] = {}  # SUBSCRIBEs sent, not yet confirmed
        self._dispatcher: threading.Thread | None = None
        self._wake = threading.Event()  # a connection was opened: the dispatcher reads it
        self._pid = os.getpid()

    @classmethod
    def for_url(cls, redis_py_url: str) -> "EventHub":
        return cls(redis.Redis.from_url(redis_py_url, socket_timeout=2, socket_connect_timeout=2,
                                        retry=Retry(NoBackoff(), 0)))

    # --- what streams call ---------------------------------------------------------------

    def subscribe(self, channel: str, timeout: float = CONFIRM_TIMEOUT_S, *,
                  pattern: bool = False) -> Subscription | None:
        """A subscription whose channel (or pattern) Redis has confirmed, or None when Redis
        does not answer."""
        sub = Subscription(self, channel, pattern)
        with self._lock:
            self._ensure_dispatcher()
            entry = self._channels.get(sub.key)
            if entry is None:
                entry = self._channels[sub.key] = _Channel()
                entry.subscribers.add(sub)
                try:
                    if self._pubsub is None:
                        self._pubsub = self._client.pubsub()
                        self._wake.set()
                    (self._pubsub.psubscribe if pattern else self._pubsub.subscribe)(channel)
                except Exception as exc:  # noqa: BLE001
                    self._fail(self._pubsub, exc)
                    return None
                self._awaiting.setdefault(sub.key, deque()).append(entry)
            else:
                entry.subscribers.add(sub)
        if not entry.ready.wait(timeout) or sub.lost:
            self.unsubscribe(sub)
            return None
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            entry = self._channels.get(sub.key)
            if entry is None or sub not in entry.subscribers:
                return
            entry.subscribers.discard(sub)
            if entry.subscribers:
                return
            del self._channels[sub.key]
            try:
                (self._pubsub.punsubscribe if sub.pattern else self._pubsub.unsubscribe)(sub.channel)
            except Exception as exc:  # noqa: BLE001
                self._fail(self._pubsub, exc)

    def followed(self) -> int:
        """Channels and patterns subscribed right now (for tests and the bench)."""
        with self._lock:
            return len(self._channels)

    # --- the dispatcher --------------------------------------------------------------------

    def _ensure_dispatcher(self) -> None:
        if self._dispatcher is not None and self._dispatcher.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._dispatcher = threading.Thread(target=self._run, name="trainrx-event-hub", daemon=True)
        self._dispatcher.start()

    def _run(self) -> None:
        while True:
            pubsub = self._pubsub
            if pubsub is None:
                self._wake.wait(READ_TIMEOUT_S)
                self._wake.clear()
                continue
            try:
                message = pubsub.get_message(timeout=READ_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001
                with self._lock:
                    self._fail(pubsub, exc)
                continue
            if message is not None:
                self._handle(pubsub, message)

    def _handle(self, pubsub, message: dict) -> None:
        kind, channel = message["type"], _text(message["channel"])
        with self._lock:
            if pubsub is not self._pubsub:
                return
            if kind in ("subscribe", "psubscribe"):
                key = (PATTERN if kind == "psubscribe" else CHANNEL, channel)
                awaiting = self._awaiting.get(key)
                if awaiting:
                    awaiting.popleft().ready.set()
                    if not awaiting:
                        del self._awaiting[key]
            elif kind == "message":
                entry = self._channels.get((CHANNEL, channel))
                for sub in list(entry.subscribers) if entry is not None else ():
                    sub._offer(message["data"])
            elif kind == "pmessage":
                entry = self._channels.get((PATTERN, _text(message["pattern"])))
                for sub in list(entry.subscribers) if entry is not None else ():
                    sub._offer((channel, message["data"]))

    def _fail(self, pubsub, exc: Exception) -> None:
        """Under the lock: the connection is gone; tell every stream and start afresh."""
        if pubsub is not self._pubsub:
            return
        log.warning("the shared Redis pub/sub connection failed (%s: %s); %d followed jobs fall back to reading "
                    "the database", type(exc).__name__, exc, len(self._channels))
        for entry in self._channels.values():
            for sub in entry.subscribers:
                sub.lost = True
                sub._offer(LOST)
            entry.ready.set()
        self._channels.clear()
        self._awaiting.clear()
        self._pubsub = None
        try:
            if pubsub is not None:
                pubsub.close()
        except Exception:  # noqa: BLE001
            pass


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
