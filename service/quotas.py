"""Per-owner quotas: the request rate limit here, and the one 429 answer every quota
gives (the standard error body, a message naming the limit and its environment
variable, and ``Retry-After``).

The rate limit is Flask-Limiter's, one shared limit over every ``/v1`` operation,
keyed by the caller's owner (requests without a principal by remote address),
counted in Redis so that every API process sees the same count. It runs after
authentication, so a request without a valid credential is answered 401 without
being counted. ``/healthz`` and ``/openapi.json`` are exempt.

When Redis does not answer, the limiter must not turn requests into 500s: it
logs a warning once and counts in this process's memory instead (each process
then allows the full rate), checking Redis again with a growing back-off until
it answers.
"""

from __future__ import annotations

import logging
import math
import time

import redis

from flask import Flask, g, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_smorest import abort
from limits import parse_many
from werkzeug.http import HTTP_STATUS_CODES

from core.redis_urls import limits_storage_url, redis_py_url
from core.settings import Settings
from service.errors import error_body, internal_error

log = logging.getLogger("trainrx.quotas")

RATE_LIMIT_KEY_PREFIX = "trainrx:ratelimit"
EXEMPT_PATHS = ("/healthz", "/openapi.json")
STORAGE_CONNECTIONS = 50  # per API process
STORAGE_TIMEOUT_S = 0.5  # a Redis that hangs delays a request by at most this, then the fallback counts


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


def init_app(app: Flask, settings: Settings) -> Limiter | None:
    """Install the rate limit (call after authentication is installed: it keys on the owner)."""
    rate = settings.quotas.rate_limit
    if rate is None:
        return None
    try:
        parse_many(rate)
    except ValueError as exc:
        raise ValueError(f"TRAINRX_RATE_LIMIT must read like '600/minute', got {rate!r}") from exc
    limiter = Limiter(
        rate_limit_key,
        application_limits=[rate],
        storage_uri=limits_storage_url(settings.redis_url),
        storage_options={"key_prefix": RATE_LIMIT_KEY_PREFIX, "connection_pool": _pool(settings.redis_url)},
        strategy="sliding-window-counter",
        in_memory_fallback_enabled=True,  # Redis down: count in memory, never a 500
        swallow_errors=True,
        headers_enabled=False,
    )
    limiter.request_filter(lambda: request.path in EXEMPT_PATHS)
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded):
        try:
            window_s = exc.limit.limit.get_expiry()
            current = limiter.current_limit
            retry_after = window_s if current is None else math.ceil(current.reset_at - time.time())
            retry_after = min(max(1, retry_after), window_s)  # limits rounds reset_at up a second
            message = (f"Too many requests: at most {exc.limit.limit} per owner (TRAINRX_RATE_LIMIT). "
                       f"Retry after {retry_after} s.")
            return jsonify(error_body(429, HTTP_STATUS_CODES[429], message)), 429, {"Retry-After": str(retry_after)}
        except Exception:  # noqa: BLE001 — an error handler must answer, never raise
            log.exception("could not answer a rate-limited request")
            return internal_error()

    return limiter
