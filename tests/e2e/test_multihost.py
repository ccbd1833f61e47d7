"""Several worker hosts, proven on one machine (tests/e2e/netns_cluster.py): three
network namespaces, one worker each with its own data directory, one Redis and one
PostgreSQL reached only over the veth links, files in the database
(TRAINRX_STORAGE=database), the API in the root namespace.

Root only, and only in CI's PostgreSQL pass (DATABASE_URL=postgresql://...): the
cluster brings its own servers, but the pass that runs against real servers is
where a test of real networking belongs. bench/multihost.py measures the same
scenario with twenty jobs and reports jobs per host and recovery time."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from tests.e2e.netns_cluster import LONG_JOB, TINY_JOB, Cluster, missing_requirements
from tests.sample_uploads import as_npz, blobs

why_not = None if (os.environ.get("DATABASE_URL") or "").startswith("postgres") else \
    "runs in CI's PostgreSQL pass only (DATABASE_URL=postgresql://...)"
why_not = why_not or missing_requirements()
pytestmark = pytest.mark.skipif(why_not is not None, reason=f"multi-host test: {why_not}")

# Two for each host: each of the three idle workers takes one as soon as they are queued
# (prefetch 1). bench/multihost.py runs twenty.
JOBS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    own = Cluster(tmp_path_factory.mktemp("multihost"), hosts=3).start()
    yield own
    own.close()


def submit(api, request: dict) -> str:
    resp = api.post("/v1/jobs", json=request)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_jobs_spread_over_three_hosts_that_share_no_disk(cluster):
    with cluster.client() as api:
        x, y = blobs(rows_per_class=30)
        resp = api.post("/v1/datasets", files={"file": ("blobs.npz", as_npz(x, y))})
        assert resp.status_code == 201, resp.text
        upload = resp.json()["id"]
        requests = [{**TINY_JOB, "seed": i} if i % 2 else {**TINY_JOB, "dataset": {"id": upload}, "seed": i}
                    for i in range(JOBS)]
        ids = [submit(api, request) for request in requests]
        # Done once the exports (a task of their own after each job, on any host) are no longer pending.
        jobs = [cluster.wait(api, job_id, until=lambda j: (j["model"] or {}).get("status") != "pending")
                for job_id in ids]
        assert [job["status"] for job in jobs] == ["succeeded"] * JOBS
        for job_id in ids:  # every file through the API, whichever host wrote it
            weights = api.get(f"/v1/jobs/{job_id}/weights")
            assert weights.status_code == 200 and load_safetensors(weights.content)
            assert api.get(f"/v1/jobs/{job_id}/model.onnx").status_code == 200

    hosts = [cluster.host_of(cluster.store.get(job_id, owner=None)["worker"]) for job_id in ids]
    assert set(hosts) == set(cluster.hosts), f"jobs per host: {[hosts.count(h) for h in cluster.hosts]}"
    # The upload came from the API's data directory to the hosts; nothing landed on any host's disk.
    for host in cluster.hosts:
        data_dir = cluster.root / host
        assert [p for p in data_dir.rglob("*") if p.is_file() and p.relative_to(data_dir).parts[0] in
                ("artifacts", "datasets")] == []
    assert not (cluster.root / "api" / "datasets" / upload).exists()


def test_a_host_cut_off_mid_job_is_recovered_by_another_and_cannot_overwrite_it(cluster):
    with cluster.client() as api:
        job_id = submit(api, LONG_JOB)
        cluster.wait(api, job_id, ("running",), until=lambda j: j["progress"]["epoch"] >= 4)
        running = cluster.store.get(job_id, owner=None)
        victim, victim_run = cluster.host_of(running["worker"]), running["run"]
        # The worst moment: a transaction from the victim has updated the job's row and not
        # committed. The server must end that session (TCP keepalives, core/db.py) before the
        # reaper can take the job over; without them the lock would outlive the test by hours.
        holder = cluster.hold_job_lock(victim, job_id)
        cluster.cut_off(victim)
        try:
            done = cluster.wait(api, job_id)
            row = cluster.store.get(job_id, owner=None)
            rescuer = cluster.host_of(row["worker"])
            weights = api.get(f"/v1/jobs/{job_id}/weights").content
        finally:
            cluster.reconnect(victim)
            holder.kill()

        assert done["status"] == "succeeded" and done["attempts"] == 1 and rescuer not in (None, victim)
        assert row["run"] > victim_run
        log = api.get(f"/v1/jobs/{job_id}/logs").text
        # The checkpoint the victim wrote reached the rescuer through the database.
        assert "resuming from the checkpoint after epoch" in log
        epochs = api.get(f"/v1/jobs/{job_id}/curves").json()["epoch"]
        assert len(epochs) > 4 and epochs == list(range(1, len(epochs) + 1))  # no gap, no repeat
        assert load_safetensors(weights)

        # Back on the network, the victim's worker ends its superseded run without writing: its
        # fenced writes are refused, or its connections died while it was cut off. It stays up.
        deadline = time.monotonic() + 120
        while cluster.log(victim).count("Task trainrx.train_job[") % 2:  # each task: received, then ended
            assert time.monotonic() < deadline, "the cut-off worker never ended its superseded run"
            time.sleep(0.5)
        assert cluster.procs[victim].poll() is None, "the cut-off worker died"
        # Whatever it would still write as its old run is refused, from its host, over its link.
        assert cluster.write_as_run(victim, job_id, victim_run).split("\n") == [
            "heartbeat refused", "epoch refused", "log refused", "finish refused"]
        after = cluster.store.get(job_id, owner=None)
        assert (after["run"], after["status"], after["worker"]) == (row["run"], "succeeded", row["worker"])
        assert api.get(f"/v1/jobs/{job_id}/weights").content == weights
        assert api.get(f"/v1/jobs/{job_id}/curves").json()["epoch"] == epochs
        assert "overwritten" not in api.get(f"/v1/jobs/{job_id}/logs").text

        # And the host serves again: a new job still finishes (on whichever host takes it).
        assert cluster.wait(api, submit(api, {**TINY_JOB, "seed": 99}))["status"] == "succeeded"
    arrays = load_safetensors(weights)
    assert all(np.isfinite(a).all() for a in arrays.values())
