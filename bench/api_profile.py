"""Where does a ``GET /v1/jobs/{id}`` spend its time? cProfile of the real app in process.

Builds the API as deployed (rate limit counted in an embedded Redis, metrics with a
multiprocess dir, JSON logs to /dev/null) on a throwaway SQLite or PostgreSQL database
holding one finished job (bench/api.py's), then serves it ``--requests`` times through
Flask's test client. Prints the statements one request sends, the body size, CPU time
and Python function calls per request (a figure a busy machine does not change), and
the profile's top entries by cumulative CPU time.

    .venv/bin/python bench/api_profile.py [--database sqlite|postgresql] [--requests 1000] [--top 40]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api import PG_ADMIN_DEFAULT, PG_ADMIN_ENV, ThrowawayPostgres, prepare_database  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    from core.embedded_redis import EmbeddedRedis

    work = Path(tempfile.mkdtemp(prefix="trainrx-api-profile-"))
    (work / "metrics").mkdir()
    embedded = EmbeddedRedis(work / "redis")
    postgres = ThrowawayPostgres(os.environ.get(PG_ADMIN_ENV, PG_ADMIN_DEFAULT)) if args.database == "postgresql" \
        else None
    url = postgres.url if postgres else f"sqlite:///{work / 'trainrx.db'}"
    try:
        os.environ.update({"DATABASE_URL": url, "REDIS_URL": embedded.start(), "TRAINRX_DATA_DIR": str(work),
                           "TRAINRX_RATE_LIMIT": "100000000/minute", "TRAINRX_METRICS_TOKEN": "m" * 32,
                           "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"), "TRAINRX_LOG_FORMAT": "json"})
        token, job_id = prepare_database(url, "profiled")
        profile(url, token, job_id, args.requests, args.top)
    finally:
        if postgres is not None:
            postgres.drop()
        embedded.stop()
    return 0


def profile(url: str, token: str, job_id: str, requests: int, top: int) -> None:
    from sqlalchemy import event

    from service import create_app

    app = create_app()
    for handler in logging.getLogger().handlers:  # the JSON lines still get formatted and written
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))
    client, path = app.test_client(), f"/v1/jobs/{job_id}"
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    for _ in range(5):  # warm: imports, pools, the token cache
        assert client.get(path).status_code == 200
    statements: list[str] = []
    engine = app.extensions["trainrx"].store.engine
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    body = client.get(path).data
    print(f"{url.split(':')[0]}: {len(statements)} statement(s) per request, body {len(body):,} bytes")
    for sql in statements:
        print("   ", " ".join(sql.split())[:160])

    began = time.process_time()
    for _ in range(requests):
        client.get(path)
    cpu_us = (time.process_time() - began) / requests * 1e6
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(requests):
        client.get(path)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=(out := io.StringIO()))
    print(f"{cpu_us:,.0f} us CPU per request (Flask's test client included), "
          f"{stats.total_calls / requests:,.0f} function calls per request")
    stats.sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
