"""Who holds the open event streams, so that a stream over a cap is refused at once.

Two caps:

- per owner (``TRAINRX_MAX_STREAMS_PER_OWNER``), counted across every API
  process in Redis: a sorted set per owner, ``trainrx:streams:<owner>``, whose
  members are stream ids scored by when their lease runs out. Taking a slot
  prunes the expired ones, counts and adds in one Lua script, so two processes
  cannot both take the last slot. A stream lives at most ``stream_max_s``, so
  its lease is that plus a margin: a process that crashes holding slots leaks
  them only until then.
- per API process (``TRAINRX_MAX_STREAMS``), counted here: what it protects, the
  process's ``worker_connections``, is per process too.

When Redis does not answer, the per-owner cap is not enforced (logged); the
per-process cap still is.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import redis

log = logging.getLogger("trainrx.events")

KEY_PREFIX = "trainrx:streams:"
LEASE_MARGIN_S = 60  # beyond a stream's maximum lifetime, before its slot counts as leaked

# KEYS[1]: the owner's set. ARGV: now, lease end, cap, stream id, key ttl (s). 1: taken, 0: full.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StreamsFull(Exception):
    """A cap is reached; the message names it and its variable."""


class Slot:
    def __init__(self, slots: "StreamSlots", owner: str, stream_id: str, in_redis: bool) -> None:
        self.slots, self.owner, self.id, self.in_redis = slots, owner, stream_id, in_redis
        self._released = False

    def release(self) -> None:
        """Idempotent: called when the response closes, however it ends."""
        if self._released:
            return
        self._released = True
        self.slots._release(self)


class StreamSlots:
    def __init__(self, client: redis.Redis, *, per_owner: int, per_process: int, max_lifetime_s: int) -> None:
        self.client, self.per_owner, self.per_process = client, per_owner, per_process
        self.lease_s = max_lifetime_s + LEASE_MARGIN_S
        self._take = client.register_script(_TAKE)
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open_here(self) -> int:
        return self._open

    def acquire(self, owner: str) -> Slot:
        with self._lock:
            if self._open >= self.per_process:
                raise StreamsFull(f"This API process has {self.per_process} event streams open, its most "
                                  "(TRAINRX_MAX_STREAMS); retry shortly or poll GET /v1/jobs/{id}.")
            self._open += 1
        stream_id = uuid.uuid4().hex
        try:
            now = time.time()
            taken = self._take(keys=[KEY_PREFIX + owner],
                               args=[now, now + self.lease_s, self.per_owner, stream_id, self.lease_s])
        except Exception as exc:  # noqa: BLE001 — fail open: the per-process cap still holds
            log.warning("stream slots: Redis does not answer (%s); the per-owner cap is not enforced",
                        type(exc).__name__)
            return Slot(self, owner, stream_id, in_redis=False)
        if not taken:
            with self._lock:
                self._open -= 1
            raise StreamsFull(f"You have {self.per_owner} event streams open, the most one owner may have "
                              "(TRAINRX_MAX_STREAMS_PER_OWNER); close one, or poll GET /v1/jobs/{id}.")
        return Slot(self, owner, stream_id, in_redis=True)

    def _release(self, slot: Slot) -> None:
        with self._lock:
            self._open -= 1
        if slot.in_redis:
            try:
                self.client.zrem(KEY_PREFIX + slot.owner, slot.id)
            except Exception:  # noqa: BLE001 — the lease runs out by itself
                log.warning("stream slots: could not release a slot of %s; it expires with its lease", slot.owner)
