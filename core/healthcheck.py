"""Container health checks (docker-compose.yml, Dockerfile): exit 0 when healthy.

    python -m core.healthcheck api [--url http://127.0.0.1:8000/healthz]   # /healthz answers 200
    python -m core.healthcheck worker    # a worker of this host has a fresh presence key in Redis

Standard library and redis-py only: it runs in every image, quickly.
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error
import urllib.request

import redis

from core.queueing import WORKER_KEY_PREFIX
from core.redis_urls import redis_py_url
from core.settings import Settings


def api_healthy(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200, f"{url}: {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"


def worker_healthy(redis_url: str, host: str) -> tuple[bool, str]:
    """Workers refresh ``trainrx:workers:<name>`` (value: their host) every 10 s, with a 30 s TTL."""
    client = redis.Redis.from_url(redis_py_url(redis_url), socket_timeout=3, socket_connect_timeout=3)
    try:
        keys = list(client.scan_iter(match=f"{WORKER_KEY_PREFIX}*", count=100))
        hosts = client.mget(keys) if keys else []
    except redis.RedisError as exc:
        return False, f"Redis: {exc}"
    mine = [k.decode()[len(WORKER_KEY_PREFIX):] for k, h in zip(keys, hosts) if h and h.decode() == host]
    return bool(mine), f"live workers on {host}: {', '.join(mine) or 'none'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.healthcheck", description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    api = parts.add_parser("api")
    api.add_argument("--url", default="http://127.0.0.1:8000/healthz")
    parts.add_parser("worker")
    args = parser.parse_args(argv)
    if args.part == "api":
        healthy, detail = api_healthy(args.url)
    else:
        healthy, detail = worker_healthy(Settings.from_env().redis_url, socket.gethostname())
    print(detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
