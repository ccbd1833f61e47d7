"""Redis URLs for the two clients that need them.

redis-py spells a unix socket ``unix:///path?db=0``; Celery's broker spells it
``redis+socket:///path``. ``REDIS_URL`` may use either spelling.
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
