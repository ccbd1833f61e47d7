"""The embedded Redis keeps what its queues hold across a graceful stop and a
SIGKILL of redis-server: its own redis-server in a tmp dir, never the machine's."""

from __future__ import annotations

import time

import pytest
import redis

from core.embedded_redis import RDB_FILE, EmbeddedRedis

QUEUE = "cpu"  # a list named like a Celery queue
MESSAGES = [b"job-1", b"job-2", b"job-3"]


def _push(embedded: EmbeddedRedis) -> None:
    client = redis.Redis(unix_socket_path=str(embedded.socket))
    client.lpush(QUEUE, *MESSAGES)
    client.close()


def _queued(embedded: EmbeddedRedis) -> list[bytes]:
    client = redis.Redis(unix_socket_path=str(embedded.socket))
    try:
        return client.lrange(QUEUE, 0, -1)
    finally:
        client.close()


def test_queued_messages_survive_a_graceful_stop(tmp_path):
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        _push(first)
    finally:
        first.stop()
    assert first.process.returncode == 0

    second = EmbeddedRedis(tmp_path)
    second.start()
    try:
        assert sorted(_queued(second)) == MESSAGES
        assert second.socket == first.socket  # the API and workers reconnect where they were
    finally:
        second.stop()


def test_queued_messages_survive_a_sigkill_of_redis_server(tmp_path):
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        _push(first)
        time.sleep(1.5)  # appendfsync everysec: the AOF is on disk within a second
    finally:
        first.process.kill()
        first.process.wait()

    second = EmbeddedRedis(tmp_path)
    second.start()
    try:
        assert sorted(_queued(second)) == MESSAGES
    finally:
        second.stop()


def test_a_snapshot_made_before_the_aof_existed_is_loaded_and_kept(tmp_path):
    """A data dir from before the AOF was turned on holds only an RDB; Redis 6 with the AOF
    on would start empty beside it."""
    old = EmbeddedRedis(tmp_path)
    old.start()
    try:
        _push(old)
        redis.Redis(unix_socket_path=str(old.socket)).save()
    finally:
        old.process.kill()
        old.process.wait()
    for aof in tmp_path.glob("appendonly*"):
        aof.unlink()
    assert (tmp_path / RDB_FILE).exists()

    upgraded = EmbeddedRedis(tmp_path)
    upgraded.start()
    try:
        assert sorted(_queued(upgraded)) == MESSAGES
    finally:
        upgraded.process.kill()  # no snapshot on the way out: only the AOF can bring them back
        upgraded.process.wait()

    again = EmbeddedRedis(tmp_path)
    again.start()
    try:
        assert sorted(_queued(again)) == MESSAGES
    finally:
        again.stop()


def test_a_second_server_on_a_running_ones_directory_is_refused(tmp_path):
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        with pytest.raises(RuntimeError, match="already answers"):
            EmbeddedRedis(tmp_path).start()
        _push(first)  # the first one is untouched
        assert sorted(_queued(first)) == MESSAGES
    finally:
        first.stop()
