"""Sweeps end to end with a real worker process: lazy creation (never more than max_parallel
unfinished children, read from the jobs table as the sweep runs), the results table against
the children's own summaries, and the periodic recovery sweep moving a sweep on when a child
ended where no worker saw it (cancelled through the API while queued)."""

from __future__ import annotations

import statistics
import time

import pytest
from sqlalchemy import func, select

from core.db import jobs, make_engine
from tests.conftest import FINISHED

TINY = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 2, "batch_size": 64}


def unfinished(engine, sweep_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(jobs).where(
            jobs.c.sweep_id == sweep_id, jobs.c.status.in_(["queued", "running"]))).scalar()


def wait_sweep(client, sweep_id: str, engine=None, timeout: float = 300) -> tuple[dict, int]:
    """The sweep once it is no longer running, and the most unfinished children seen meanwhile."""
    deadline, most = time.monotonic() + timeout, 0
    while True:
        if engine is not None:
            most = max(most, unfinished(engine, sweep_id))
        sweep = client.get(f"/v1/sweeps/{sweep_id}").get_json()
        if sweep["status"] != "running":
            return sweep, most
        assert time.monotonic() < deadline, f"sweep still running after {timeout}s: {sweep['counts']}"
        time.sleep(0.05)


def test_a_sweep_runs_to_done_lazily_and_its_table_matches_the_children(live, settings):
    # Two combinations x two seeds: each child also exports its model, the bulk of a tiny job's time.
    body = {"name": "tiny", "base": {**TINY, "activation": "sigmoid"},
            "grid": {"architecture.hidden_layers": [[4], [4, 4, 4]]}, "seeds": [0, 1], "max_parallel": 2}
    resp = live.post("/v1/sweeps", json=body)
    assert resp.status_code == 202, resp.get_json()
    assert resp.headers["Location"].endswith(f"/v1/sweeps/{resp.get_json()['id']}")
    started = resp.get_json()
    assert started["size"] == 4 and started["counts"]["pending"] == 2
    engine = make_engine(settings.database_url)
    sweep, most = wait_sweep(live, started["id"], engine)
    engine.dispose()
    assert sweep["status"] == "done" and sweep["finished_at"] is not None
    assert 1 <= most <= 2  # lazily: never more than max_parallel queued or running at once
    assert sweep["counts"] == {"pending": 0, "queued": 0, "running": 0, "succeeded": 4, "failed": 0, "cancelled": 0}
    assert len(sweep["results"]) == 2

    for row in sweep["results"]:
        children = [live.get(f"/v1/jobs/{job_id}").get_json() for job_id in row["job_ids"]]
        assert sorted(c["request"]["seed"] for c in children) == [0, 1] and row["seeds"] == [0, 1]
        for child in children:
            assert child["request"]["activation"]["name"] == "sigmoid"
            assert child["request"]["architecture"]["hidden_layers"] == row["values"]["architecture.hidden_layers"]
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "best_epoch"):
            values = [c["summary"][key] for c in children]
            stats = row["best_epoch"] if key == "best_epoch" else row["metrics"][key]
            assert stats["n"] == 2
            assert stats["mean"] == pytest.approx(statistics.fmean(values))
            assert stats["std"] == pytest.approx(statistics.stdev(values))
        assert row["time_s"]["mean"] == pytest.approx(statistics.fmean(c["timings"]["train_s"] for c in children))
        verdicts = [live.get(f"/v1/jobs/{c['id']}/diagnosis").get_json()["verdict"] for c in children]
        assert sum(row["verdicts"].values()) == 2 and row["verdict"] in verdicts
    for finding in sweep["comparison"]["findings"]:
        named = [c["values"] for c in finding["combinations"]]
        assert all(values in [r["values"] for r in sweep["results"]] for values in named)

    # The dashboard's page shows the same table.
    from tests.conftest import OWNER, TOKENS
    from tests.service.test_dashboard_pages import session_client

    browser, _ = session_client(live.application, TOKENS[OWNER])
    html = browser.get(f"/sweeps/{sweep['id']}").get_data(as_text=True)
    for row in sweep["results"]:
        shown = row["metrics"]["val_accuracy"]
        assert f"{shown['mean']:.4f} ± {shown['std']:.4f}" in html

    # Deleting a child is allowed: it drops out of the results.
    gone = sweep["results"][0]["job_ids"][0]
    assert live.delete(f"/v1/jobs/{gone}").status_code == 204
    after = live.get(f"/v1/sweeps/{sweep['id']}").get_json()
    assert gone not in after["results"][0]["job_ids"] and after["results"][0]["finished"] == 1
    assert after["results"][0]["metrics"]["train_loss"]["n"] == 1
    assert after["children"][0]["status"] == "deleted" and after["children"][0]["job_id"] is None


def test_the_recovery_sweep_moves_a_sweep_on_when_a_child_is_cancelled_while_queued(live):
    # cuda children wait on the gpu queue, which no test worker serves: they stay queued until cancelled.
    body = {"base": {**TINY, "device": "cuda"}, "grid": {"epochs": [1, 2, 3]}, "max_parallel": 1}
    sweep = live.post("/v1/sweeps", json=body).get_json()
    first = sweep["children"][0]["job_id"]
    assert first and sweep["children"][1]["job_id"] is None
    assert live.post(f"/v1/jobs/{first}/cancel").status_code == 202  # no worker sees this child end
    deadline = time.monotonic() + 60
    while (child := live.get(f"/v1/sweeps/{sweep['id']}").get_json()["children"][1])["job_id"] is None:
        assert time.monotonic() < deadline, "the periodic sweep did not create the next child"
        time.sleep(0.2)
    assert child["status"] == "queued"
    cancelled = live.post(f"/v1/sweeps/{sweep['id']}/cancel").get_json()
    assert cancelled["status"] == "cancelled"
    assert [c["status"] for c in cancelled["children"]] == ["cancelled", "cancelled", "not_created"]
    for c in cancelled["children"][:2]:
        assert live.get(f"/v1/jobs/{c['job_id']}").get_json()["status"] in FINISHED
