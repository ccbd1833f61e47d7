"""Redis URLs for the two clients that need them.

redis-py spells a unix socket ``unix:///path?db=0``; Celery's broker spells it
``redis+socket:///path``; the ``limits`` package (the rate limiter's storage)
``redis+unix:///path?db=0``. ``REDIS_URL`` may use either of the first two.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def redis_py_url(url: str) -> str:
    if url.startswith("redis+socket://"):
        return "unix://" + url[len("redis+socket://"):]
    return url


def celery_broker_url(url: str) -> str:
    if url.startswith("unix://"):
        parts = urlsplit(url)
        return "redis+socket://" + parts.path + (f"?{parts.query}" if parts.query else "")
    return url


def limits_storage_url(url: str) -> str:
    """For ``limits.storage_from_string``, which reads ``unix://`` as no scheme it knows."""
    url = redis_py_url(url)
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://"):]
    return url
