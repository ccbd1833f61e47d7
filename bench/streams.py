"""Do open event streams stall the API? A real gunicorn (service/gunicorn_conf.py), an
embedded Redis and SQLite; no worker, so every job stays queued and every stream idle.

Three phases, timed the same way (GET /healthz and GET /v1/jobs/{id}, p50/p99):
  idle       no streams open;
  at cap     owners open streams until every further one is refused (429);
  attempted  N streams attempted at once from several owners (most refused), those
             accepted still open.

    .venv/bin/python bench/streams.py [--streams 2000] [--owners 40] [--samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import migrate  # noqa: E402
from core.db import make_engine  # noqa: E402
from core.embedded_redis import EmbeddedRedis  # noqa: E402
from core.tokens import USER, TokenStore, new_token  # noqa: E402

WAITING = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 1, "device": "cuda"}


def start_api(data_dir: Path, redis_url: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, TRAINRX_DATA_DIR=str(data_dir), DATABASE_URL=f"sqlite:///{data_dir / 'trainrx.db'}",
               REDIS_URL=redis_url, PYTHONPATH=str(ROOT), TRAINRX_RATE_LIMIT="off")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "service" / "gunicorn_conf.py"),
                             "--bind", f"127.0.0.1:{port}", "service.wsgi:app"], cwd=ROOT, env=env,
                            stdout=open(data_dir / "gunicorn.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start; see " + str(data_dir / "gunicorn.log"))


async def timings(base: str, token: str, job_id: str, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"/healthz": [], "GET /v1/jobs/{id}": []}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(samples):
            for name, path in (("/healthz", "/healthz"), ("GET /v1/jobs/{id}", f"/v1/jobs/{job_id}")):
                began = time.perf_counter()
                resp = await http.get(path)
                out[name].append((time.perf_counter() - began) * 1000)
                assert resp.status_code == 200, resp.text
    return out


async def open_streams(base: str, owners: list[tuple[str, str]], n: int) -> tuple[list, dict[int, int]]:
    """Attempt n streams round-robin over the owners, all at once; keep the accepted ones open."""
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(120, connect=60), limits=limits)
    codes: dict[int, int] = {}
    held = []

    async def one(i: int):
        token, job_id = owners[i % len(owners)]
        request = http.build_request("GET", f"/v1/jobs/{job_id}/events", headers={"Authorization": f"Bearer {token}"})
        try:
            resp = await http.send(request, stream=True)
        except httpx.HTTPError:
            codes[-1] = codes.get(-1, 0) + 1
            return
        codes[resp.status_code] = codes.get(resp.status_code, 0) + 1
        if resp.status_code == 200:
            held.append(resp)
        else:
            await resp.aclose()

    await asyncio.gather(*(one(i) for i in range(n)))
    return [http, held], codes


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="trainrx-bench-streams-"))
    redis = EmbeddedRedis(work / "redis")
    redis_url = redis.start()
    engine = make_engine(f"sqlite:///{work / 'trainrx.db'}")
    migrate.upgrade(engine)
    tokens = TokenStore(engine)
    owner_tokens = []
    for i in range(args.owners):
        token = new_token()
        tokens.create(f"bench-{i}", USER, label="bench", token=token)
        owner_tokens.append(token)
    port = 18000 + os.getpid() % 1000
    api = start_api(work, redis_url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        owners = []
        for token in owner_tokens:
            resp = httpx.post(f"{base}/v1/jobs", json=WAITING, headers={"Authorization": f"Bearer {token}"})
            owners.append((token, resp.json()["id"]))
        probe_token, probe_job = owners[0]
        rows = [("idle", "-", await timings(base, probe_token, probe_job, args.samples))]

        # At the cap: each owner opens streams up to its cap (the per-process caps may bind first).
        (http, held), codes = await open_streams(base, owners, args.owners * 25)
        rows.append((f"at cap: {len(held)} open", f"{codes}", await timings(base, probe_token, probe_job,
                                                                            args.samples)))
        for resp in held:
            await resp.aclose()
        await http.aclose()
        await asyncio.sleep(17)  # closed streams give their slots back at their next write (keep-alive: 15 s)

        # N attempted at once: most refused; the accepted ones stay open while we measure.
        (http, held), codes = await open_streams(base, owners, args.streams)
        rows.append((f"{args.streams} attempted: {len(held)} open", f"{codes}",
                     await timings(base, probe_token, probe_job, args.samples)))
        for resp in held:
            await resp.aclose()
        await http.aclose()
    finally:
        api.terminate()
        api.wait(30)
        redis.stop()

    print(f"\n{args.owners} owners, {args.samples} samples per phase; answers by status code; times in ms\n")
    print(f"| phase | stream answers | /healthz p50 | /healthz p99 | GET /v1/jobs/{{id}} p50 | GET /v1/jobs/{{id}} p99 |")
    print("|---|---|---|---|---|---|")
    for phase, answers, t in rows:
        h, j = t["/healthz"], t["GET /v1/jobs/{id}"]
        print(f"| {phase} | {answers} | {pct(h, 50):.1f} | {pct(h, 99):.1f} | {pct(j, 50):.1f} | {pct(j, 99):.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--owners", type=int, default=40)
    parser.add_argument("--samples", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
