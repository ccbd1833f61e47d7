"""Per-owner quotas: the request rate limit here, and the one 429 answer every quota
gives (the standard error body, a message naming the limit and its environment
variable, and ``Retry-After``).

The rate limit is one shared limit over every request but ``/healthz``,
``/openapi.json``, static files and unmatched paths, keyed by the caller's owner
(requests without a principal by remote address), counted in Redis so that every
API process sees the same count: the ``limits`` package's sliding window counter,
one Redis round trip per request, under the keys Flask-Limiter used. It is called
directly, not through Flask-Limiter, whose per-request bookkeeping cost more than
the round trip (docs/performance.md). It runs after authentication, so a request
without a valid credential is answered 401 without being counted.

When Redis does not answer, the limit must not turn requests into 500s: it logs a
warning once and counts in this process's memory instead (each process then allows
the full rate), checking Redis again with a growing back-off until it answers. Any
other failure of the limiter lets the request through, logged.
"""

from __future__ import annotations

import logging
import math
import time

import redis
from flask import Flask, Response, g, jsonify, request
from flask_smorest import abort
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from werkzeug.http import HTTP_STATUS_CODES

from core.redis_urls import limits_storage_url, redis_py_url
from core.settings import Settings
from service.errors import error_body

log = logging.getLogger("trainrx.quotas")

RATE_LIMIT_KEY_PREFIX = "trainrx:ratelimit"
EXEMPT_PATHS = ("/healthz", "/openapi.json")
STORAGE_CONNECTIONS = 50  # per API process
STORAGE_TIMEOUT_S = 0.5  # a Redis that hangs delays a request by at most this, then the fallback counts
SCOPE = "global"  # the one limit's scope (Flask-Limiter's name for an application-wide limit: same keys)
RECHECK_MAX_DOUBLINGS = 5  # Redis down: look again after 1, 2, 4, ... 32 s, then from 1 s again


def too_many(message: str, retry_after_s: float) -> None:
    """Refuse with 429, the standard body and Retry-After (whole seconds, at least 1)."""
    abort(429, message=message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})


def _pool(redis_url: str) -> redis.BlockingConnectionPool:
    """A burst of requests waits briefly for one of a few connections (redis-py's default pool
    raises when it runs out, which would send every request of the burst to the fallback)."""
    return redis.BlockingConnectionPool.from_url(redis_py_url(redis_url), max_connections=STORAGE_CONNECTIONS,
                                                 timeout=STORAGE_TIMEOUT_S, socket_timeout=STORAGE_TIMEOUT_S,
                                                 socket_connect_timeout=STORAGE_TIMEOUT_S)


def rate_limit_key() -> str:
    principal = g.get("principal")
    return f"owner:{principal.owner}" if principal is not None else f"addr:{request.remote_addr or '-'}"


class RateLimit:
    """The per-owner request rate: every limit of ``TRAINRX_RATE_LIMIT`` (``600/minute``, or
    several separated by ``;``), hit once per request in Redis, or in memory while Redis is down."""

    def __init__(self, rate: str, redis_url: str) -> None:
        self.items: list[RateLimitItem] = sorted(parse_many(rate))
        self.storage = storage_from_string(limits_storage_url(redis_url), key_prefix=RATE_LIMIT_KEY_PREFIX,
                                           connection_pool=_pool(redis_url), wrap_exceptions=True)
        self.shared = SlidingWindowCounterRateLimiter(self.storage)
        self.local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.redis_down = False
        self._rechecks = 0
        self._next_recheck = 0.0

    def before_request(self) -> Response | tuple | None:
        endpoint = request.endpoint
        if not endpoint or endpoint.rsplit(".", 1)[-1] == "static" or request.path in EXEMPT_PATHS:
            return None
        try:
            return self._hit(rate_limit_key())
        except Exception:  # noqa: BLE001 — the limiter failing must never fail the request
            log.exception("the rate limit could not be checked; the request goes through")
            return None

    def _hit(self, key: str) -> tuple | None:
        for item in self.items:
            strategy = self._strategy()
            try:
                allowed = strategy.hit(item, key, SCOPE)
            except StorageError:
                log.warning("Rate limit storage unreachable - falling back to in-memory storage")
                self.redis_down, self._rechecks, self._next_recheck = True, 0, time.monotonic() + 1
                strategy = self.local
                allowed = strategy.hit(item, key, SCOPE)
            if not allowed:
                return self._too_many(strategy, item, key)
        return None

    def _strategy(self) -> SlidingWindowCounterRateLimiter:
        """Redis, unless it was found down: then memory, looking again with a growing back-off."""
        if not self.redis_down:
            return self.shared
        if time.monotonic() < self._next_recheck:
            return self.local
        self._rechecks = self._rechecks + 1 if self._rechecks < RECHECK_MAX_DOUBLINGS else 0
        self._next_recheck = time.monotonic() + 2 ** self._rechecks
        if not self.storage.check():
            return self.local
        log.info("Rate limit storage recovered")
        self.redis_down = False
        return self.shared

    @staticmethod
    def _too_many(strategy: SlidingWindowCounterRateLimiter, item: RateLimitItem, key: str) -> tuple:
        window_s = item.get_expiry()
        reset_at = strategy.get_window_stats(item, key, SCOPE).reset_time
        retry_after = min(max(1, math.ceil(reset_at - time.time())), window_s)
        message = (f"Too many requests: at most {item} per owner (TRAINRX_RATE_LIMIT). "
                   f"Retry after {retry_after} s.")
        return jsonify(error_body(429, HTTP_STATUS_CODES[429], message)), 429, {"Retry-After": str(retry_after)}


def init_app(app: Flask, settings: Settings) -> RateLimit | None:
    """Install the rate limit (call after authentication is installed: it keys on the owner)."""
    rate = settings.quotas.rate_limit
    if rate is None:
        return None
    try:
        parse_many(rate)
    except ValueError as exc:
        raise ValueError(f"TRAINRX_RATE_LIMIT must read like '600/minute', got {rate!r}") from exc
    limit = RateLimit(rate, settings.redis_url)
    app.before_request(limit.before_request)
    return limit
