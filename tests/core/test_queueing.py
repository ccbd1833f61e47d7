"""Job messages on a real Redis: a returning job (its worker was lost or shut down) is
taken before the backlog of new ones, and the recovery sweep sees every message."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from core.embedded_redis import EmbeddedRedis
from core.queueing import make_celery, publish_job
from core.redis_urls import redis_py_url
from workers.recovery import job_ids_with_messages


@pytest.fixture()
def own_redis(tmp_path, settings):
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    yield replace(settings, redis_url=url), redis.Redis.from_url(redis_py_url(url))
    server.stop()


def test_a_returning_job_is_consumed_before_the_backlog(own_redis):
    settings, client = own_redis
    celery = make_celery(settings)
    for job_id in ("a" * 32, "b" * 32):
        publish_job(celery, job_id, "cpu")
    publish_job(celery, "c" * 32, "cpu", returning=True)
    assert job_ids_with_messages(client) == {"a" * 32, "b" * 32, "c" * 32}
    # Kombu's consumer BRPOPs the priority lists in order: the first non-empty one wins.
    lists = sorted((k for k in client.keys("cpu*")), key=len)
    popped = client.brpop(lists, timeout=1)
    assert b"c" * 32 in popped[1]
