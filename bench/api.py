"""What does ``GET /v1/jobs/{id}`` cost next to a bare Flask endpoint under the same gunicorn?

One run, A/B interleaved: the real API (``service.wsgi:app``) on SQLite, the same on
PostgreSQL (a throwaway database made and dropped on the server, never ``test``), and a
bare Flask app that answers the same JSON body (``jsonify`` of the job the API served),
all three under ``service/gunicorn_conf.py`` (its worker class and worker count). The
API runs as deployed: Bearer authentication, the Redis-counted rate limit (set far above
the load, so every request is counted and none refused), metrics (``TRAINRX_METRICS_TOKEN``
and a prometheus multiprocess dir) and JSON logs to a file. After the run it checks that
each of those did its work (rate-limit keys in Redis, the request counter, log lines).

The load comes from this process: an asyncio client speaking HTTP/1.1 keep-alive on
``--clients`` connections with a pre-built request and a minimal response parser (no
httpx: it would eat the CPU the servers need on a small machine). Its own CPU share is
printed with the table. Each repetition loads every target for ``--seconds`` in a rotating
order; figures are medians over repetitions with min-max, ratios are per repetition.

    .venv/bin/python bench/api.py [--quick] [--databases sqlite,postgresql] [--clients 16]
                                  [--reps 7] [--seconds 4] [--json FILE]

PostgreSQL: ``TRAINRX_BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
names a server and a maintenance database to create the throwaway one from; when it does not
answer, the PostgreSQL rows are skipped with a note. Redis: ``REDIS_URL``, else an embedded
one. Timings are measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import free_port  # noqa: E402

BAR_RATIO, GOAL_RATIO, BAR_P99_MS, GOAL_P99_MS = 0.5, 0.8, 50.0, 20.0
PG_ADMIN_ENV = "TRAINRX_BENCH_PG_URL"
PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
BARE_BODY_ENV = "TRAINRX_BENCH_BARE_BODY"
# A finished digits job like the issue's (64 -> 512 -> 512 -> 10, 40 epochs): what a client polls.
JOB_REQUEST = {"name": "bench", "dataset": {"name": "digits"}, "architecture": {"hidden_layers": [512, 512]},
               "optimizer": {"name": "adam", "learning_rate": 0.001}, "epochs": 40, "batch_size": 64}


def bare_app():
    """The reference: Flask, one route, ``jsonify`` of a dict (gunicorn calls this factory)."""
    from flask import Flask, jsonify

    body = json.loads(Path(os.environ[BARE_BODY_ENV]).read_text())
    app = Flask("bare")
    app.json.sort_keys = False

    @app.get("/v1/jobs/<job_id>")
    def job(job_id: str):
        return jsonify(body)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


# --- the load generator ---------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    client_cpu_s: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the same request again as soon as each answer is whole."""

    def __init__(self, request: bytes, run: Run, deadline: float, closed: asyncio.Future) -> None:
        self.request, self.run, self.deadline, self.closed = request, run, deadline, closed
        self.buffer = bytearray()
        self.need: int | None = None
        self.status = 0
        self.began = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        if time.perf_counter() >= self.deadline:
            self.transport.close()
            return
        self.buffer.clear()
        self.need = None
        self.began = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end + 2]).lower()  # each header line ends with CRLF
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise RuntimeError("a response without Content-Length: this client cannot read it")
            self.need = end + 4 + int(head[at + 17:head.index(b"\r\n", at + 2)])
        if len(self.buffer) >= self.need:
            self.run.latencies.append(time.perf_counter() - self.began)
            self.run.statuses[self.status] = self.run.statuses.get(self.status, 0) + 1
            self._send()

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _load(port: int, path: str, headers: dict[str, str], clients: int, seconds: float) -> Run:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    run = Run(seconds)
    loop = asyncio.get_running_loop()
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:  # the server may close a connection: open another
            closed = loop.create_future()
            await loop.create_connection(lambda: _Connection(request, run, deadline, closed), "127.0.0.1", port)
            await closed

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    run.seconds = time.perf_counter() - began
    return run


def load(port: int, path: str, headers: dict[str, str], clients: int, seconds: float) -> Run:
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    run = asyncio.run(_load(port, path, headers, clients, seconds))
    after = resource.getrusage(resource.RUSAGE_SELF)
    run.client_cpu_s = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return run


# --- the servers ----------------------------------------------------------------------------


class Server:
    """gunicorn with service/gunicorn_conf.py serving ``target``, its output in ``log``."""

    def __init__(self, name: str, target: str, env: dict[str, str], log: Path, root: Path = ROOT) -> None:
        self.name, self.port, self.log_path = name, free_port(), log
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn_conf.py", "--bind", f"127.0.0.1:{self.port}",
             target], cwd=root, env={**os.environ, "PYTHONPATH": str(root), **env}, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {log}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def prepare_database(url: str, owner: str) -> tuple[str, str]:
    """Migrate ``url``, make ``owner``'s token and a finished job; returns (token, job id)."""
    from core import migrate
    from core.db import make_engine
    from core.jobstore import JobStore, SUCCEEDED
    from core.settings import Limits
    from core.spec import normalise
    from core.tokens import TokenStore

    engine = make_engine(url)
    migrate.upgrade(engine)
    _, token = TokenStore(engine).create(owner, label="bench")
    store = JobStore(engine)
    job, _ = store.create(normalise(JOB_REQUEST, limits=Limits(), resolver=None), "cpu", owner=owner)
    started = store.start(job["id"], "bench@host")
    store.set_data_info(job["id"], started["run"], {
        "name": "digits", "device": "cpu", "features": 64, "classes": 10, "train_samples": 1437,
        "train_samples_available": 1437, "validation_samples": 360, "test_samples": 0,
        "train_class_counts": {str(c): 143 + c % 3 for c in range(10)},
        "preprocessing": {"method": "standardize", "note": "sklearn load_digits, scaled per feature"},
        "input_stats": {"abs_max": 7.9, "mean_abs_max": 3.1, "std_min": 0.0, "std_max": 1.0}})
    store.finish(job["id"], started["run"], SUCCEEDED, setup_s=0.41, train_s=2.99, diagnosis={
        "verdict": "healthy", "findings": []}, summary={
        "train_loss": 0.0012, "val_loss": 0.081, "train_accuracy": 1.0, "val_accuracy": 0.975, "best_epoch": 31,
        "epochs_run": 40, "stopped_early": False, "returned_epoch": 40}, artifacts={
        "weights": "weights.safetensors",
        "model": {"file": "model.pt2", "format": "torch.export", "torch_version": "2.13.0+cpu", "bytes": 1_190_439},
        "onnx": {"file": "model.onnx", "opset": 20, "bytes": 1_175_026}})
    engine.dispose()
    return token, job["id"]


class ThrowawayPostgres:
    """A database of its own on the PostgreSQL server, dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        import psycopg

        self.admin_url, self.name = admin_url, f"trainrx_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = admin_url.rsplit("/", 1)[0] + "/" + self.name

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# --- the run --------------------------------------------------------------------------------


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def _median_f(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def checks(server: Server, env: dict[str, str], redis_url: str, owner: str) -> list[str]:
    """What says that authentication, rate limiting, metrics and JSON logs were on."""
    import redis

    from core.redis_urls import redis_py_url

    said = []
    counted = redis.Redis.from_url(redis_py_url(redis_url)).keys(f"*ratelimit*{owner}*")
    said.append(f"rate limit: {len(counted)} key(s) counting {owner}")
    scraped = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {env['TRAINRX_METRICS_TOKEN']}"}).text
    total = sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
                if line.startswith("trainrx_http_requests_total{") and 'status="200"' in line
                and "/v1/jobs/<job_id>" in line)
    said.append(f"metrics: {total:,.0f} GET /v1/jobs/<job_id> counted")
    lines = sum(1 for line in server.log_path.read_text().splitlines() if '"event": "request"' in line)
    said.append(f"json logs: {lines:,} request lines")
    return said


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions of 1 s (about a minute)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--reps", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline", type=Path, help="also serve the API from this checkout of an earlier commit "
                                                      "(git worktree add DIR COMMIT), on the same databases")
    parser.add_argument("--ablate", action="store_true", help="also serve the API on the first database with the "
                                                               "rate limit off, and with text logs: what each costs")
    args = parser.parse_args()
    reps = args.reps or (5 if args.quick else 7)
    seconds = args.seconds or (1.0 if args.quick else 4.0)

    from core.embedded_redis import EmbeddedRedis

    work = Path(tempfile.mkdtemp(prefix="trainrx-bench-api-"))
    owner = f"bench-{uuid.uuid4().hex[:8]}"
    embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis(work / "redis")
    redis_url = os.environ.get("REDIS_URL") or embedded.start()
    servers: dict[str, Server] = {}
    envs: dict[str, dict[str, str]] = {}
    paths: dict[str, tuple[str, dict[str, str]]] = {}
    notes: list[str] = []
    postgres = None
    load_before = os.getloadavg()
    try:
        for db in args.databases.split(","):
            if db == "sqlite":
                url = f"sqlite:///{work / 'sqlite' / 'trainrx.db'}"
                (work / "sqlite").mkdir()
            elif db == "postgresql":
                try:
                    postgres = ThrowawayPostgres(os.environ.get(PG_ADMIN_ENV, PG_ADMIN_DEFAULT))
                except Exception as exc:  # noqa: BLE001 — no server here: say so, measure the rest
                    notes.append(f"PostgreSQL skipped: {exc}".splitlines()[0])
                    continue
                url = postgres.url
            else:
                parser.error(f"--databases: sqlite or postgresql, not {db!r}")
            token, job_id = prepare_database(url, owner)
            name = f"trainrx ({db})"
            envs[name] = {
                "DATABASE_URL": url, "REDIS_URL": redis_url, "TRAINRX_DATA_DIR": str(work / db),
                "TRAINRX_RATE_LIMIT": "100000000/minute", "TRAINRX_METRICS_TOKEN": uuid.uuid4().hex,
                "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{db}"), "TRAINRX_LOG_FORMAT": "json"}
            servers[name] = Server(name, "service.wsgi:app", envs[name], work / f"{db}.log")
            paths[name] = (f"/v1/jobs/{job_id}", {"Authorization": f"Bearer {token}"})
            if args.baseline:
                base = f"baseline ({db})"
                envs[base] = {**envs[name], "TRAINRX_METRICS_TOKEN": uuid.uuid4().hex,
                              "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-base-{db}")}
                servers[base] = Server(base, "service.wsgi:app", envs[base], work / f"base-{db}.log",
                                       args.baseline.resolve())
                paths[base] = paths[name]
        first = next(iter(servers), None)
        for label, change in (("rate limit off", {"TRAINRX_RATE_LIMIT": "off"}),
                              ("text logs", {"TRAINRX_LOG_FORMAT": "text"})) if args.ablate and first else ():
            name = f"{first}, {label}"
            slug = label.replace(" ", "-")
            envs[name] = {**envs[first], **change, "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{slug}")}
            servers[name] = Server(name, "service.wsgi:app", envs[name], work / f"{slug}.log")
            paths[name] = paths[first]
        if not servers:
            print("no database to measure: " + "; ".join(notes))
            return 1
        served = httpx.get(f"http://127.0.0.1:{servers[first].port}{paths[first][0]}", headers=paths[first][1])
        served.raise_for_status()
        (work / "body.json").write_text(served.text)
        servers["bare"] = Server("bare", "bench.api:bare_app()", {BARE_BODY_ENV: str(work / "body.json")},
                                 work / "bare.log")
        paths["bare"] = paths[first]

        names = list(servers)
        runs: dict[str, list[Run]] = {name: [] for name in names}
        for name in names:  # warm up: imports, pools, caches
            load(servers[name].port, *paths[name], args.clients, min(1.0, seconds))
        for rep in range(reps):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                runs[name].append(load(servers[name].port, *paths[name], args.clients, seconds))
        said = [f"{name}: " + ", ".join(checks(servers[name], envs[name], redis_url, owner)) for name in envs]
    finally:
        for server in servers.values():
            server.stop()
        if postgres is not None:
            postgres.drop()
        if embedded is not None:
            embedded.stop()
    load_after = os.getloadavg()

    bare = runs["bare"]
    report = {"clients": args.clients, "reps": reps, "seconds": seconds, "body_bytes": len(served.content),
              "loadavg_before": load_before, "loadavg_after": load_after, "targets": {}}
    print(f"\nGET /v1/jobs/{{id}}, {args.clients} clients, {reps} x {seconds:g} s each, A/B interleaved; "
          f"body {len(served.content):,} bytes; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{'figure':<34} {'trainrx req/s':>24} {'bare req/s':>24} {'ratio (bar 0.5, goal 0.8)':>26} "
          f"{'p50 ms':>18} {'p99 ms (bar 50)':>20}")
    print(f"{'bare flask':<34} {'':>24} {_median([r.rps for r in bare]):>24} {'':>26} "
          f"{_median_f([r.quantile_ms(0.5) for r in bare], 1):>18} {_median_f([r.quantile_ms(0.99) for r in bare], 1):>20}")
    failed = False
    for name in names[:-1]:
        mine = runs[name]
        ratios = [a.rps / b.rps for a, b in zip(mine, bare)]
        p99 = [r.quantile_ms(0.99) for r in mine]
        errors = sum(sum(n for s, n in r.statuses.items() if s != 200) for r in mine)
        failed |= errors > 0
        print(f"{name:<34} {_median([r.rps for r in mine]):>24} {_median([r.rps for r in bare]):>24} "
              f"{_median_f(ratios):>26} {_median_f([r.quantile_ms(0.5) for r in mine], 1):>18} "
              f"{_median_f(p99, 1):>20}" + (f"  {errors} non-200!" if errors else ""))
        report["targets"][name] = {"rps": [r.rps for r in mine], "ratio": ratios, "p50_ms": [r.quantile_ms(0.5)
                                   for r in mine], "p99_ms": p99, "errors": errors,
                                   "meets_bar": statistics.median(ratios) >= BAR_RATIO
                                   and statistics.median(p99) < BAR_P99_MS}
    report["targets"]["bare"] = {"rps": [r.rps for r in bare], "p99_ms": [r.quantile_ms(0.99) for r in bare]}
    client_share = [r.client_cpu_s / r.seconds for rs in runs.values() for r in rs]
    print(f"load generator: one asyncio process, raw HTTP/1.1 keep-alive; it used "
          f"{statistics.median(client_share):.0%} of a core (median)")
    for line in said + notes:
        print(line)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if failed:
        print(f"servers' logs: {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
