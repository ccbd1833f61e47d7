"""Does drawing plots stall the API? A real gunicorn (service/gunicorn_conf.py, gevent),
an embedded Redis and SQLite; no worker. One job is written as a worker would (a
deep network's per-layer probes over many epochs) and left running, so every plot
of it is drawn afresh, never served from the store.

Two phases, timed the same way (GET /healthz and GET /v1/jobs/{id}, p50/p99):
  idle       nothing drawn;
  drawing    N clients ask for the running job's plots without pause (each answer
             a fresh render in the renderer processes).

It also prints how long one plot takes to come back while the others draw.

    .venv/bin/python bench/plots.py [--clients 6] [--samples 200] [--epochs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from core import migrate  # noqa: E402
from core.db import make_engine  # noqa: E402
from core.embedded_redis import EmbeddedRedis  # noqa: E402
from core.jobstore import JobStore  # noqa: E402
from core.settings import Limits  # noqa: E402
from core.spec import normalise  # noqa: E402
from core.tokens import USER, TokenStore, new_token  # noqa: E402
from streams import pct, start_api  # noqa: E402

OWNER = "bench-plots"
LAYERS = [f"hidden{i}" for i in range(1, 9)] + ["output"]
REQUEST = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [100] * 8}, "activation": "sigmoid",
           "epochs": 10_000, "device": "cuda"}


def running_job(engine, epochs: int) -> str:
    """A running job with ``epochs`` epochs recorded, each with ten sampled steps."""
    store = JobStore(engine)
    job, _ = store.create(normalise(REQUEST, limits=Limits(), resolver=None), "gpu", owner=OWNER)
    run = store.start(job["id"], "bench")["run"]
    for e in range(1, epochs + 1):
        row = {"epoch": e, "train_loss": 2.3 / math.sqrt(e), "val_loss": 2.3 / math.sqrt(e) + 0.001 * e,
               "train_accuracy": 1 - 0.9 / math.sqrt(e), "val_accuracy": 1 - 0.95 / math.sqrt(e),
               "grad_norm": {name: 10.0 ** (i - 8) for i, name in enumerate(LAYERS)},
               "saturated_fraction": {name: min(1.0, 0.01 * e) for name in LAYERS[:-1]},
               "activation_variance": {name: 10.0 ** -i for i, name in enumerate(LAYERS[:-1])}}
        steps = {"step": [10 * e + i for i in range(10)], "epoch": [e] * 10,
                 "loss": [2.3 / math.sqrt(e)] * 10, "grad_norm": [1.0] * 10}
        store.record_epoch(job["id"], run, row, None, steps=steps)
    return job["id"]


async def timings(http: httpx.AsyncClient, job_id: str, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"/healthz": [], "GET /v1/jobs/{id}": []}
    for _ in range(samples):
        for name, path in (("/healthz", "/healthz"), ("GET /v1/jobs/{id}", f"/v1/jobs/{job_id}")):
            started = time.perf_counter()
            resp = await http.get(path)
            out[name].append((time.perf_counter() - started) * 1000)
            assert resp.status_code == 200, resp.text
        await asyncio.sleep(0.01)
    return out


async def draw_forever(http: httpx.AsyncClient, job_id: str, took: list[float], stop: asyncio.Event) -> None:
    names = ("curves", "gradients", "activations", "steps")
    i = 0
    while not stop.is_set():
        started = time.perf_counter()
        resp = await http.get(f"/v1/jobs/{job_id}/plots/{names[i % 4]}.png")
        if resp.status_code == 200:
            took.append((time.perf_counter() - started) * 1000)
        i += 1


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="trainrx-bench-plots-"))
    redis = EmbeddedRedis(work / "redis")
    redis_url = redis.start()
    engine = make_engine(f"sqlite:///{work / 'trainrx.db'}")
    migrate.upgrade(engine)
    token = new_token()
    TokenStore(engine).create(OWNER, USER, label="bench", token=token)
    job_id = running_job(engine, args.epochs)
    port = 18000 + os.getpid() % 1000
    api = start_api(work, redis_url, port)
    rows = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            await http.get(f"/v1/jobs/{job_id}/plots/curves.png")  # start the renderers first
            rows.append(("idle", await timings(http, job_id, args.samples), []))
            took: list[float] = []
            stop = asyncio.Event()
            drawers = [asyncio.create_task(draw_forever(http, job_id, took, stop)) for _ in range(args.clients)]
            await asyncio.sleep(2)
            measured = await timings(http, job_id, args.samples)
            stop.set()
            await asyncio.gather(*drawers)
            rows.append((f"drawing: {args.clients} clients", measured, took))
    finally:
        api.terminate()
        api.wait(30)
        redis.stop()

    print(f"\nA running job of {args.epochs} epochs and {len(LAYERS)} weight layers; {args.samples} samples per "
          "phase; times in ms\n")
    print("| phase | plots drawn | plot p50 | /healthz p50 | /healthz p99 | GET /v1/jobs/{id} p50 | "
          "GET /v1/jobs/{id} p99 |")
    print("|---|---|---|---|---|---|---|")
    for phase, t, took in rows:
        h, j = t["/healthz"], t["GET /v1/jobs/{id}"]
        plot = f"{statistics.median(took):.0f}" if took else "-"
        print(f"| {phase} | {len(took)} | {plot} | {pct(h, 50):.1f} | {pct(h, 99):.1f} | {pct(j, 50):.1f} | "
              f"{pct(j, 99):.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
