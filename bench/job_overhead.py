"""Job overhead: what a job costs besides its training, and how long it waits for an idle worker.

Starts `make run`'s stack (`python -m core.stack`, the API under gunicorn and one
worker) twice, on data dirs and ports of their own: A with the worker's dataset cache
off (TRAINRX_DATASET_CACHE_MB=0: every job loads its dataset, as before the cache), B as
shipped. It submits the same small job (digits, one hidden layer of 64, a few epochs) to
A and B in turn, one at a time, each once the worker is idle (the previous job's export
done), and reads from each finished job:

- overhead ``total_s - train_s``: the job's own time outside the training loop (loading
  and splitting the data, writing weights, diagnosis and the final row, events);
- setup ``setup_s``: the part of it before training;
- queue latency ``queued_s`` (``started_at - created_at``) with an idle worker;
- export: from the job's ``finished_at`` until its ``model.status`` left ``pending`` (seen
  by polling every 20 ms): the .pt2 and ONNX exports, which no longer count in the job.

The first job of each fresh worker is reported on its own (a worker pays its one-time
costs, the torch import among them, at start, before it takes a job). Medians of the
repetitions with their min-max; nothing is asserted.

    .venv/bin/python bench/job_overhead.py [--reps 7] [--epochs 5] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import Stack  # noqa: E402  (bench/load.py: `make run`'s stack on a data dir and port of its own)

BARS = {"overhead_s": ("< 0.3 s", "< 0.1 s"), "queued_s": ("< 0.2 s", "keep")}


def job_request(epochs: int, seed: int) -> dict:
    return {"name": "job-overhead", "dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64]},
            "epochs": epochs, "seed": seed}


def run_one(http: httpx.Client, request: dict, timeout: float = 600) -> dict:
    """Submit, wait for the job and then for its export; the figures of this job."""
    job_id = http.post("/v1/jobs", json=request).raise_for_status().json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['status']} after {timeout} s")
        time.sleep(0.02)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
    while (job["model"] or {}).get("status") == "pending":
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id}: the export is still pending after {timeout} s")
        time.sleep(0.02)
        job = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
    exported_after = time.time() - datetime.fromisoformat(job["finished_at"]).timestamp()
    timings = job["timings"]
    return {"overhead_s": timings["total_s"] - timings["train_s"], "setup_s": timings["setup_s"],
            "train_s": timings["train_s"], "queued_s": timings["queued_s"], "export_s": exported_after,
            "model": job["model"]["status"]}


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def start(root: Path, name: str, **env: str) -> tuple[Stack, httpx.Client]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        (root / name).mkdir()
        stack = Stack(root / name)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return stack, httpx.Client(base_url=stack.base, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="jobs per side after the first (median of these)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5 repetitions of a 3-epoch job")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    reps, epochs = (5, 3) if args.quick else (max(args.reps, 5), args.epochs)

    # The client polls every 20 ms, past the default per-owner rate limit: off, for the benchmark only.
    sides = {"A cache off": {"TRAINRX_DATASET_CACHE_MB": "0", "TRAINRX_RATE_LIMIT": "off"},
             "B as shipped": {"TRAINRX_RATE_LIMIT": "off"}}
    results: dict[str, list[dict]] = {side: [] for side in sides}
    firsts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="trainrx-job-overhead-") as tmp:
        stacks = {side: start(Path(tmp), f"stack{i}", **env) for i, (side, env) in enumerate(sides.items())}
        try:
            for side, (_, http) in stacks.items():
                firsts[side] = run_one(http, job_request(epochs, 0))
            for rep in range(reps):  # interleaved: A, B, A, B, ...
                for side, (_, http) in stacks.items():
                    results[side].append(run_one(http, job_request(epochs, rep + 1)))
        finally:
            for stack, http in stacks.values():
                http.close()
                stack.stop()

    print(f"\njob overhead: digits [64], {epochs} epochs, one worker, idle between jobs; "
          f"median [min-max] of {reps} jobs per side, seconds\n")
    header = f"{'figure':<34} | {'A cache off':<22} | {'B as shipped':<22} | {'bar':<8} | goal"
    print(header)
    print("-" * len(header))
    for key, label in (("overhead_s", "overhead total_s - train_s"), ("setup_s", "  of which setup_s"),
                       ("queued_s", "queue latency started - created"), ("export_s", "export after the job"),
                       ("train_s", "train_s")):
        bar, goal = BARS.get(key, ("", ""))
        a, b = (summary([r[key] for r in results[side]]) for side in sides)
        print(f"{label:<34} | {a:<22} | {b:<22} | {bar:<8} | {goal}")
    for side in sides:
        first = firsts[side]
        print(f"first job of a fresh worker ({side}): overhead {first['overhead_s']:.3f} s, setup "
              f"{first['setup_s']:.3f} s, queued {first['queued_s']:.3f} s, export {first['export_s']:.3f} s")
    ready = sum(r["model"] == "ready" for side in sides for r in results[side])
    print(f"models ready: {ready} of {2 * reps}")
    if args.json:
        args.json.write_text(json.dumps({"epochs": epochs, "reps": reps, "first": firsts, "jobs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
