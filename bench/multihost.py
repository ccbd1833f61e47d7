"""Several worker hosts on one machine: how work spreads, and how long a lost host takes to recover.

Builds the cluster of tests/e2e/netns_cluster.py (root only): N network namespaces joined
to a bridge by veth pairs, one Celery worker in each with its own TRAINRX_DATA_DIR, a
Redis and a PostgreSQL of its own listening on the bridge address only, files in the
database (TRAINRX_STORAGE=database), the API (gunicorn) in the root namespace. Then:

1. submits JOBS tiny jobs through the API (every other one on an uploaded dataset) and
   waits for them; counts the jobs each host ran and downloads every job's weights;
2. submits a longer job, cuts its host off the network (its link down) after a few
   epochs, and times the recovery: until the job is re-queued (the reaper, after
   TRAINRX_HEARTBEAT_GRACE_S = 10 s here), and until it succeeded on another host
   (resumed from the checkpoint the lost host wrote into the database);
3. puts the host back on the network, times until its worker (still running) has ended
   the superseded run, and tries that run's writes from the host: each is refused (the
   run fencing of core/job_runs.py);
4. cuts a host off while a process on it holds a job row's lock in an open transaction
   (what a worker cut off between an UPDATE and its COMMIT leaves behind), and times
   until PostgreSQL ends that session and the row can be written again (TCP keepalives,
   core/db.py DEAD_PEER_KEEPALIVE); without them the lock would be held for hours.

    .venv/bin/python bench/multihost.py [--jobs 20] [--hosts 3] [--json FILE]

Timings are measured and printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from core.db import make_engine  # noqa: E402
from tests.e2e.netns_cluster import FINISHED, LONG_JOB, TINY_JOB, Cluster, missing_requirements  # noqa: E402
from tests.sample_uploads import as_npz, blobs  # noqa: E402

def spread(cluster: Cluster, api, jobs: int) -> dict:
    x, y = blobs(rows_per_class=30)
    upload = api.post("/v1/datasets", files={"file": ("blobs.npz", as_npz(x, y))}).json()["id"]
    began = time.monotonic()
    ids = [api.post("/v1/jobs", json={**TINY_JOB, "seed": i} if i % 2 else
                    {**TINY_JOB, "dataset": {"id": upload}, "seed": i}).json()["id"] for i in range(jobs)]
    statuses = [cluster.wait(api, job_id)["status"] for job_id in ids]
    wall = time.monotonic() - began
    downloaded = sum(api.get(f"/v1/jobs/{job_id}/weights").status_code == 200 for job_id in ids)
    hosts = [cluster.host_of(cluster.store.get(job_id, owner=None)["worker"]) for job_id in ids]
    return {"jobs": jobs, "succeeded": statuses.count("succeeded"), "weights_downloaded": downloaded,
            "jobs_per_host": {host: hosts.count(host) for host in cluster.hosts}, "wall_s": round(wall, 1)}


def recovery(cluster: Cluster, api) -> dict:
    job_id = api.post("/v1/jobs", json=LONG_JOB).json()["id"]
    cluster.wait(api, job_id, ("running",), until=lambda j: j["progress"]["epoch"] >= 4)
    running = cluster.store.get(job_id, owner=None)
    victim, victim_run = cluster.host_of(running["worker"]), running["run"]
    cut = time.monotonic()
    cluster.cut_off(victim)
    try:
        cluster.wait(api, job_id, until=lambda j: j["attempts"] >= 1, statuses=("queued", "running", *FINISHED))
        requeued = time.monotonic() - cut
        done = cluster.wait(api, job_id)
        recovered = time.monotonic() - cut
    finally:
        cluster.reconnect(victim)
    back = time.monotonic()
    ended = None  # the victim's worker ends its superseded run: refused, or its connections died while cut off
    while time.monotonic() - back < 300:
        if cluster.log(victim).count("Task trainrx.train_job[") % 2 == 0:
            ended = round(time.monotonic() - back, 1)
            break
        time.sleep(0.5)
    old_run_writes = cluster.write_as_run(victim, job_id, victim_run).split("\n")
    log = api.get(f"/v1/jobs/{job_id}/logs").text
    return {"job_id": job_id, "status": done["status"], "attempts": done["attempts"],
            "rescuer": cluster.host_of(cluster.store.get(job_id, owner=None)["worker"]), "victim": victim,
            "resumed_from_checkpoint": "resuming from the checkpoint after epoch" in log,
            "requeued_after_s": round(requeued, 1), "succeeded_after_s": round(recovered, 1),
            "victim_run_ended_after_reconnect_s": ended, "old_run_writes_from_victim": old_run_writes,
            "victim_still_running": cluster.procs[victim].poll() is None}


def held_lock(cluster: Cluster, job_id: str) -> dict:
    """A host cut off in the middle of a transaction that holds a job row's lock: how long
    until PostgreSQL ends its session (TCP keepalives, core/db.py) and the row is free again."""
    host = cluster.hosts[0]
    holder = cluster.hold_job_lock(host, job_id)
    try:
        cut = time.monotonic()
        cluster.cut_off(host)
        engine = make_engine(cluster.database_url, busy_timeout_s=5)
        freed = None
        while time.monotonic() - cut < 600:
            try:
                with engine.begin() as conn:
                    conn.execute(text("UPDATE jobs SET heartbeat_at = heartbeat_at WHERE id = :id"), {"id": job_id})
                freed = round(time.monotonic() - cut, 1)
                break
            except OperationalError:  # lock_timeout: still held
                continue
        engine.dispose()
    finally:
        cluster.reconnect(host)
        holder.kill()
        holder.wait()
    return {"row_lock_freed_after_s": freed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    why_not = missing_requirements()
    if why_not:
        print(f"bench/multihost.py cannot run here: {why_not}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="trainrx-multihost-"))
    began = time.monotonic()
    cluster = Cluster(root, hosts=args.hosts).start()
    try:
        result = {"hosts": args.hosts, "setup_s": round(time.monotonic() - began, 1)}
        with cluster.client() as api:
            result["spread"] = spread(cluster, api, args.jobs)
            result["recovery"] = recovery(cluster, api)
            result["lost_mid_transaction"] = held_lock(cluster, result["recovery"]["job_id"])
    finally:
        cluster.close()
    result["total_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(result, indent=2))
    print(f"logs under {root}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
