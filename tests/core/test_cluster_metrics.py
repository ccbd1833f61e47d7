"""The figures workers write to Redis for GET /metrics (core/cluster_metrics.py), on the
suite's real Redis. A queue name of their own keeps the suite's worker out of the counts."""

from __future__ import annotations

import uuid

import pytest
import redis

from core import cluster_metrics
from core.redis_urls import redis_py_url


@pytest.fixture()
def client(redis_url):
    return redis.Redis.from_url(redis_py_url(redis_url))


@pytest.fixture()
def queue(client):
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    for key in client.scan_iter(match=f"{cluster_metrics.PREFIX}*{name}*"):
        client.delete(key)


def test_epochs_per_second_counts_the_last_minute_of_complete_windows(client, queue):
    now = 1_000_000.0  # a window boundary: windows of 10 s
    cluster_metrics.record_epochs(client, queue, 30, now=now - 65)  # over a minute ago: out of the rate
    cluster_metrics.record_epochs(client, queue, 12, now=now - 55)
    cluster_metrics.record_epochs(client, queue, 6, now=now - 1)
    cluster_metrics.record_epochs(client, queue, 99, now=now + 1)  # the window in progress: not yet
    assert cluster_metrics.epochs_per_second(client, queue, now=now + 1) == pytest.approx((12 + 6) / 60)
    assert cluster_metrics.epochs_total(client, queue) == 30 + 12 + 6 + 99


def test_histograms_are_cumulative_with_count_and_sum(client, queue):
    for seconds in (0.5, 3, 3, 20, 100_000):
        cluster_metrics.observe(client, cluster_metrics.JOB_DURATION, queue, seconds)
    hist = cluster_metrics.histogram(client, cluster_metrics.JOB_DURATION, queue)
    buckets = dict(hist.buckets)
    assert (buckets["1.0"], buckets["5.0"], buckets["15.0"], buckets["30.0"], buckets["7200.0"]) == (1, 3, 3, 4, 4)
    assert buckets["+Inf"] == hist.count == 5 and hist.sum == pytest.approx(100_026.5)
    assert [le for le, _ in hist.buckets][-1] == "+Inf"


def test_queue_depth_adds_up_every_priority_list(client, queue):
    from kombu.transport.redis import Channel

    client.rpush(queue, b"m1")
    client.rpush(f"{queue}{Channel.sep}3", b"m2", b"m3")
    try:
        assert cluster_metrics.queue_depth(client, queue) == 3
    finally:
        client.delete(queue, f"{queue}{Channel.sep}3")
