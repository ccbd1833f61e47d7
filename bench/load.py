"""Load with faults: is every submission accounted for exactly once, and does every job end?

Starts `make run`'s stack (`python -m core.stack`) on a data dir and port of its
own, makes a token for each of several owners, then N client threads submit M
tiny jobs concurrently, each with an Idempotency-Key and random client-side
retries (a retry re-sends the same key). While they run it SIGKILLs the worker
once (mid-job) and SIGKILLs the embedded Redis once; `make run` restarts both.
At the end every job must reach a terminal status.

    .venv/bin/python bench/load.py [--clients 50] [--jobs 500] [--owners 5] [--timeout 1800]

It prints, and writes as JSON next to itself with --json FILE:
submitted, accepted, rejected (429), failed submissions, finished, lost,
duplicated, stuck, p50/p99 submit latency, and the recovery time after each
fault. A 429 counts as rejected, not lost. Timings are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
JOB = {"dataset": {"name": "moons", "train_samples": 200}, "architecture": {"hidden_layers": [8]}, "epochs": 2,
       "batch_size": 32, "diagnose": False}
TERMINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.port, self.token = free_port(), "trx_bench_" + uuid.uuid4().hex + uuid.uuid4().hex
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update(PORT=str(self.port), TRAINRX_DATA_DIR=str(data_dir), TRAINRX_BOOTSTRAP_TOKEN=self.token,
                   PYTHONUNBUFFERED="1", TRAINRX_HEARTBEAT_GRACE_S="15", TRAINRX_RECOVERY_INTERVAL_S="2",
                   TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER=os.environ.get("TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER", "20"))
        self.log = open(data_dir / "stack.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "core.stack"], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).json().get("workers", 0) >= 1:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stack did not start; see {data_dir / 'stack.log'}")
            time.sleep(0.5)

    def child(self, pattern: str) -> psutil.Process | None:
        for proc in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if re.search(pattern, " ".join(proc.cmdline())):
                    return proc
            except psutil.Error:
                continue
        return None

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.by_key: dict[str, set[str]] = {}  # idempotency key -> job ids the API answered with
        self.owner_of: dict[str, str] = {}
        self.rejected = self.errors = 0


def client_thread(stack: Stack, tokens: dict[str, str], work: list[str], results: Results, seed: int) -> None:
    rng = random.Random(seed)
    owners = list(tokens)
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        for key in work:
            owner = owners[hash(key) % len(owners)]
            headers = {"Authorization": f"Bearer {tokens[owner]}", "Idempotency-Key": key}
            tries = 1 + (rng.random() < 0.2)  # one in five clients retries even after a success
            for attempt in range(8):
                began = time.monotonic()
                try:
                    resp = http.post("/v1/jobs", json=JOB, headers=headers)
                except httpx.HTTPError:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                with results.lock:
                    results.latencies.append(time.monotonic() - began)
                if resp.status_code in (200, 202):
                    with results.lock:
                        results.by_key.setdefault(key, set()).add(resp.json()["id"])
                        results.owner_of[key] = owner
                    tries -= 1
                    if tries <= 0:
                        break
                elif resp.status_code == 429:
                    with results.lock:
                        results.rejected += 1
                    break
                elif resp.status_code >= 500:
                    time.sleep(float(resp.headers.get("Retry-After", 0.5 * (attempt + 1))))
                else:
                    with results.lock:
                        results.errors += 1
                    break


def faults(stack: Stack, report: dict, admin: httpx.Client, owners: list[str], stop: threading.Event) -> None:
    """SIGKILL the worker while it runs a job, later SIGKILL Redis; time how long each takes to heal."""
    def running_job() -> str | None:
        for owner in owners:  # an admin lists another owner's jobs with ?owner=
            page = admin.get("/v1/jobs", params={"status": "running", "limit": 100, "owner": owner}).json()
            if page.get("items"):
                return page["items"][0]["id"]
        return None

    time.sleep(3)
    job_id = None
    while not stop.is_set() and job_id is None:
        try:
            job_id = running_job()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    worker = stack.child(r"celery .*worker")
    if worker is None or job_id is None:
        return
    killed = time.monotonic()
    worker.kill()
    report["worker_killed_job"] = job_id

    def watch_killed_job() -> None:
        while not stop.is_set():
            try:
                job = admin.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in TERMINAL:
                    report["worker_kill_recovery_s"] = round(time.monotonic() - killed, 1)
                    report["worker_killed_job_status"] = job["status"]
                    report["worker_killed_job_attempts"] = job.get("attempts")
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_killed_job, daemon=True)
    watcher.start()
    time.sleep(5)
    redis_server = stack.child(r"redis-server")
    if redis_server is not None:
        redis_killed = time.monotonic()
        redis_server.kill()
        while not stop.is_set():
            try:
                if admin.get("/healthz").status_code == 200 and admin.get("/v1/jobs?limit=1").status_code == 200:
                    report["redis_kill_api_back_s"] = round(time.monotonic() - redis_killed, 1)
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    watcher.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--owners", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="trainrx-load-"))
    stack = Stack(data_dir)
    report: dict = {"clients": args.clients, "jobs": args.jobs, "owners": args.owners}
    try:
        admin = httpx.Client(base_url=stack.base, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)
        tokens = {}
        for i in range(args.owners):
            made = admin.post("/v1/tokens", json={"owner": f"load-{i}", "label": "bench"}).json()
            tokens[made["owner"]] = made["token"]
        keys = [uuid.uuid4().hex for _ in range(args.jobs)]
        results = Results()
        stop = threading.Event()
        fault_thread = threading.Thread(target=faults, args=(stack, report, admin, list(tokens), stop),
                                        daemon=True)
        threads = [threading.Thread(target=client_thread, args=(stack, tokens, keys[i::args.clients], results, i))
                   for i in range(args.clients)]
        began = time.monotonic()
        fault_thread.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report["submit_s"] = round(time.monotonic() - began, 1)

        accepted = {key: ids for key, ids in results.by_key.items()}
        job_ids = {i for ids in accepted.values() for i in ids}
        deadline = time.monotonic() + args.timeout
        pending = set(job_ids)
        lost = set()
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                key = next(k for k, ids in accepted.items() if job_id in ids)
                try:
                    resp = httpx.get(f"{stack.base}/v1/jobs/{job_id}",
                                     headers={"Authorization": f"Bearer {tokens[results.owner_of[key]]}"}, timeout=30)
                except httpx.HTTPError:
                    continue
                if resp.status_code == 404:
                    lost.add(job_id)
                    pending.discard(job_id)
                elif resp.status_code == 200 and resp.json()["status"] in TERMINAL:
                    pending.discard(job_id)
            time.sleep(1)
        stop.set()
        fault_thread.join(timeout=60)
        report.update(
            submitted=args.jobs, accepted=len(accepted), rejected_429=results.rejected,
            refused_other=results.errors, finished=len(job_ids) - len(pending) - len(lost), lost=len(lost),
            duplicated=sum(1 for ids in accepted.values() if len(ids) > 1), stuck=len(pending),
            not_accounted=args.jobs - len(accepted) - results.rejected - results.errors,
            submit_p50_ms=round(statistics.median(results.latencies) * 1000, 1) if results.latencies else None,
            submit_p99_ms=round(statistics.quantiles(results.latencies, n=100)[98] * 1000, 1)
            if len(results.latencies) >= 100 else None,
            total_s=round(time.monotonic() - began, 1))
    finally:
        stack.stop()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report.get("lost") == 0 and report.get("duplicated") == 0 and report.get("stuck") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
