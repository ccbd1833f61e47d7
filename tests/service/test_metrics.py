"""GET /metrics in one API process (no gunicorn): the guard, and the figures parsed
with prometheus-client's own parser. tests/e2e/test_operations.py scrapes a real
gunicorn (multiprocess mode) with real workers."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db import jobs
from service import create_app

METRICS_TOKEN = "m" * 40


@pytest.fixture(scope="module")
def metrics_app(settings):
    return create_app({"SETTINGS": settings, "TESTING": True, "METRICS_TOKEN": METRICS_TOKEN})


def samples(text: str) -> dict:
    """{(sample name, frozenset of labels): value}"""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_are_off_without_a_token(anonymous, client):
    assert anonymous.get("/metrics").status_code == 404
    assert client.get("/metrics").status_code == 404  # an API token opens nothing here either


def test_metrics_need_the_metrics_token(metrics_app, client):
    anonymous = metrics_app.test_client()
    resp = anonymous.get("/metrics")
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "TRAINRX_METRICS_TOKEN" in resp.get_json()["message"]
    wrong = anonymous.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status_code == 403 and wrong.get_json()["code"] == 403


def test_metrics_count_requests_by_rule_and_jobs_by_status(metrics_app, settings):
    from tests.conftest import TOKENS, OWNER

    api = metrics_app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKENS[OWNER]}"
    scrape = metrics_app.test_client()
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    before = samples(scrape.get("/metrics", headers=headers).get_data(as_text=True))
    missing = api.get("/v1/jobs/" + "0" * 32)
    assert missing.status_code == 404
    waits = api.post("/v1/jobs", json={"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]},
                                       "epochs": 1, "device": "cuda"})
    assert waits.status_code == 202
    resp = scrape.get("/metrics", headers=headers)
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    after = samples(resp.get_data(as_text=True))

    rule = frozenset({"endpoint": "/v1/jobs/<job_id>", "method": "GET", "status": "404"}.items())
    assert after[("trainrx_http_requests_total", rule)] == before.get(("trainrx_http_requests_total", rule), 0) + 1
    assert after[("trainrx_http_request_duration_seconds_count", rule)] >= 1
    # Jobs waiting for a GPU stay queued (the suite runs no GPU worker), so the count cannot move meanwhile.
    with metrics_app.extensions["trainrx"].store.engine.connect() as conn:
        waiting = conn.execute(jobs.select().where(jobs.c.status == "queued", jobs.c.queue == "gpu")).all()
    assert after[("trainrx_jobs", frozenset({"status": "queued", "queue": "gpu"}.items()))] == len(waiting) >= 1
    assert after[("trainrx_queue_depth", frozenset({"queue": "gpu"}.items()))] >= 1  # its message waits too
    assert after[("trainrx_part_up", frozenset({"part": "database"}.items()))] == 1
    assert after[("trainrx_part_up", frozenset({"part": "redis"}.items()))] == 1
    for queue in ("cpu", "gpu"):
        assert ("trainrx_queue_depth", frozenset({"queue": queue}.items())) in after
        assert ("trainrx_job_duration_seconds_bucket", frozenset({"queue": queue, "le": "+Inf"}.items())) in after
