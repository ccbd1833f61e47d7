"""Several worker hosts on one machine: network namespaces joined by veth pairs to a
bridge, one Redis and one PostgreSQL of their own, the API in the root namespace.

Each "host" is a network namespace with one Celery worker process and its own
``TRAINRX_DATA_DIR``: the hosts share no filesystem, only the network, so every
file goes through ``TRAINRX_STORAGE=database``. The machine's own Redis and
PostgreSQL (127.0.0.1) are never touched: the servers here listen only on the
bridge address this cluster made. Needs root, iproute2, redis-server and
PostgreSQL's ``initdb``. Everything is torn down on ``close()`` (also after a
failure part way through setting up).

Used by tests/e2e/test_multihost.py and bench/multihost.py.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import redis

from core import migrate
from core.db import make_engine
from core.jobstore import JobStore
from core.queueing import WORKER_KEY_PREFIX
from core.tokens import USER, TokenStore, new_token

ROOT = Path(__file__).resolve().parents[2]
OWNER = "multihost"
FINISHED = ("succeeded", "failed", "cancelled")
TINY_JOB = {"dataset": {"name": "moons", "train_samples": 200}, "architecture": {"hidden_layers": [8]}, "epochs": 2,
            "batch_size": 32}
# Long enough to be cut off mid-run with checkpoints behind it, short enough to finish in seconds.
LONG_JOB = {"dataset": {"name": "moons", "train_samples": 400}, "architecture": {"hidden_layers": [32, 32]},
            "epochs": 40, "batch_size": 16, "seed": 3}
# Lost workers noticed within seconds (heartbeats come every 2 s, even on a loaded 2-core
# machine); a checkpoint after every epoch.
FAST_RECOVERY = {"TRAINRX_HEARTBEAT_GRACE_S": "10", "TRAINRX_RECOVERY_INTERVAL_S": "0.5",
                 "TRAINRX_CHECKPOINT_EVERY_EPOCHS": "1", "TRAINRX_TORCH_THREADS": "1"}
GENEROUS = {"TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER": "1000", "TRAINRX_RATE_LIMIT": "off"}


_HOLD_LOCK = """
import sys, time
from sqlalchemy import text
from core.db import make_engine
with make_engine(sys.argv[1]).connect() as conn:
    conn.execute(text("UPDATE jobs SET heartbeat_at = heartbeat_at WHERE id = :id"), {"id": sys.argv[2]})
    print("locked", flush=True)
    time.sleep(600)
"""

_WRITE_AS_RUN = """
import sys
from core.db import make_engine
from core.jobstore import JobStore, Superseded
store, job_id, run = JobStore(make_engine(sys.argv[1])), sys.argv[2], int(sys.argv[3])
print("heartbeat", "current" if store.heartbeat(job_id, run).current else "refused")
for name, write in [("epoch", lambda: store.record_epoch(job_id, run, {"epoch": 1, "train_loss": 9.9}, None)),
                    ("log", lambda: store.log(job_id, "overwritten", run=run)),
                    ("finish", lambda: store.finish(job_id, run, "failed", error={"type": "overwritten"}))]:
    try:
        write()
        print(name, "written")
    except Superseded:
        print(name, "refused")
"""


def missing_requirements() -> str | None:
    """Why this machine cannot build the cluster, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2's `ip` is not installed"
    if not shutil.which("redis-server"):
        return "redis-server is not installed"
    if not postgres_bin("initdb"):
        return "PostgreSQL's initdb is not installed (/usr/lib/postgresql/*/bin)"
    return _cannot_make_namespaces()


def _cannot_make_namespaces() -> str | None:
    """Root in a container may still lack the capabilities: try once, and say so."""
    probe = f"trxprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    if made.returncode:
        return f"this machine does not let root make network namespaces ({made.stderr.strip()})"
    return None


def postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _wait(what: str, ready, proc: subprocess.Popen | None, log: Path | None, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} did not come up; see {log}:\n{tail}")
        time.sleep(0.2)


class Cluster:
    """``hosts`` namespaces on a bridge, with the servers and processes above."""

    def __init__(self, root: Path, hosts: int = 3) -> None:
        self.root = root
        self.tag = f"{random.randrange(16**4):04x}"
        self.subnet = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
        self.server_ip = f"{self.subnet}.1"
        self.bridge = f"trx{self.tag}br"
        self.hosts = [f"trx{self.tag}h{i}" for i in range(1, hosts + 1)]  # namespace = root-side veth name
        self.procs: dict[str, subprocess.Popen] = {}
        self.token = new_token()
        self._undo = contextlib.ExitStack()
        self.database_url = self.redis_url = self.api_url = ""
        self.store: JobStore | None = None

    # --- building it -----------------------------------------------------------

    def start(self) -> "Cluster":
        try:
            self._network()
            self._redis()
            self._postgres()
            self._api()
            for host in self.hosts:  # all at once: each takes seconds to import torch
                self.start_worker(host, wait=False)
            for host in self.hosts:
                self.wait_for_worker(host)
        except BaseException:
            self.close()
            raise
        return self

    def _network(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._undo.callback(subprocess.run, ["ip", "link", "del", self.bridge], capture_output=True)
        _run("ip", "addr", "add", f"{self.server_ip}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for i, host in enumerate(self.hosts, start=1):
            _run("ip", "netns", "add", host)
            self._undo.callback(subprocess.run, ["ip", "netns", "del", host], capture_output=True)
            _run("ip", "link", "add", host, "type", "veth", "peer", "name", f"{host}p")
            self._undo.callback(subprocess.run, ["ip", "link", "del", host], capture_output=True)
            _run("ip", "link", "set", f"{host}p", "netns", host)
            _run("ip", "-n", host, "link", "set", f"{host}p", "name", "eth0")
            _run("ip", "-n", host, "addr", "add", f"{self.subnet}.{10 + i}/24", "dev", "eth0")
            _run("ip", "-n", host, "link", "set", "eth0", "up")
            _run("ip", "-n", host, "link", "set", "lo", "up")
            _run("ip", "link", "set", host, "master", self.bridge)
            _run("ip", "link", "set", host, "up")

    def _spawn(self, name: str, args: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kwargs)
        self.procs[name] = proc
        return proc

    def _redis(self) -> None:
        port = _free_port(self.server_ip)
        work = self.root / "redis"
        work.mkdir()
        proc = self._spawn("redis", ["redis-server", "--bind", self.server_ip, "--port", str(port),
                                     "--protected-mode", "no", "--save", "", "--appendonly", "no",
                                     "--dir", str(work)])
        self.redis_url = f"redis://{self.server_ip}:{port}/0"
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        _wait("redis-server", answers, proc, self.root / "redis.log")

    def _postgres(self) -> None:
        # initdb refuses root: the server runs as the postgres user, in a directory it owns.
        data = Path(tempfile.mkdtemp(prefix="trainrx-pg-"))
        self._undo.callback(shutil.rmtree, data, ignore_errors=True)
        shutil.chown(data, "postgres", "postgres")
        pg = {"user": "postgres", "group": "postgres"}
        subprocess.run([postgres_bin("initdb"), "-D", str(data / "db"), "-U", "trainrx", "-A", "trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120, **pg)
        with open(data / "db" / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.subnet}.0/24 trust\n")
        port = _free_port(self.server_ip)
        proc = self._spawn("postgres", [postgres_bin("postgres"), "-D", str(data / "db"),
                                        "-c", f"listen_addresses={self.server_ip}", "-c", f"port={port}",
                                        "-c", f"unix_socket_directories={data}", "-c", "fsync=off",
                                        "-c", "synchronous_commit=off", "-c", "max_connections=200"], **pg)
        admin = f"postgresql://trainrx@{self.server_ip}:{port}/postgres"

        def answers() -> bool:
            try:
                psycopg.connect(admin, connect_timeout=1).close()
                return True
            except psycopg.OperationalError:
                return False

        _wait("PostgreSQL", answers, proc, self.root / "postgres.log")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE trainrx")
        self.database_url = f"postgresql://trainrx@{self.server_ip}:{port}/trainrx"
        engine = make_engine(self.database_url)
        migrate.upgrade(engine)
        TokenStore(engine).create(OWNER, USER, label="multihost", token=self.token)
        self.store = JobStore(engine)

    def env(self, data_dir: Path, **extra: str) -> dict:
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINRX_")}
        env.update(TRAINRX_DATA_DIR=str(data_dir), DATABASE_URL=self.database_url, REDIS_URL=self.redis_url,
                   TRAINRX_STORAGE="database", TRAINRX_DEFAULT_QUEUE="cpu", PYTHONPATH=str(ROOT),
                   TRAINRX_SECRET_KEY=f"multihost-{self.tag}".ljust(32, "0"), **FAST_RECOVERY, **GENEROUS, **extra)
        return env

    def _api(self) -> None:
        port = _free_port("127.0.0.1")
        conf = str(ROOT / "service" / "gunicorn_conf.py")
        proc = self._spawn("api", [sys.executable, "-m", "gunicorn", "-c", conf, "--bind", f"127.0.0.1:{port}",
                                   "service.wsgi:app"], self.env(self.root / "api"), start_new_session=True)
        self.api_url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{self.api_url}/healthz", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        _wait("the API", answers, proc, self.root / "api.log")

    def start_worker(self, host: str, wait: bool = True) -> subprocess.Popen:
        """One worker process inside ``host``'s namespace, named after it."""
        proc = self._spawn(host, ["ip", "netns", "exec", host, sys.executable, "-m", "celery", "-A",
                                  "workers.celery_app", "worker", "-Q", "cpu", "--pool", "threads",
                                  "--concurrency", "1", "-n", f"{host}@%h", "--without-gossip", "--without-mingle",
                                  "-l", "INFO"], self.env(self.root / host))
        if wait:
            self.wait_for_worker(host)
        return proc

    def wait_for_worker(self, host: str) -> None:
        """Until the worker announces itself in Redis (core/queueing.py), over its link."""
        client = redis.Redis.from_url(self.redis_url)
        _wait(f"the worker in {host}",
              lambda: any(host in k.decode() for k in client.keys(f"{WORKER_KEY_PREFIX}*")),
              self.procs[host], self.root / f"{host}.log")

    # --- using it --------------------------------------------------------------

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    @staticmethod
    def wait(api: httpx.Client, job_id: str, statuses=FINISHED, until=None, timeout: float = 300) -> dict:
        """The job (GET /v1/jobs/{id}) once its status is one of ``statuses`` and ``until(job)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            job = api.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in statuses and (until is None or until(job)):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:g} s")
            time.sleep(0.3)

    def host_of(self, worker: str | None) -> str | None:
        """The namespace whose worker is named ``worker`` (``<host>@<hostname>``)."""
        return next((h for h in self.hosts if worker and worker.startswith(f"{h}@")), None)

    def hold_job_lock(self, host: str, job_id: str) -> subprocess.Popen:
        """From ``host``, open a transaction that has updated the job's row and stays open: what
        a worker leaves on the server when it is cut off between an UPDATE and its COMMIT.
        Returns once the lock is held; kill the process when done."""
        holder = subprocess.Popen(["ip", "netns", "exec", host, sys.executable, "-c", _HOLD_LOCK, self.database_url,
                                   job_id], cwd=ROOT, env=self.env(self.root / host), stdout=subprocess.PIPE,
                                  text=True)
        if holder.stdout.readline().strip() != "locked":
            holder.kill()
            raise RuntimeError(f"could not lock job {job_id}'s row from {host}")
        self.procs[f"{host}-lock"] = holder
        return holder

    def write_as_run(self, host: str, job_id: str, run: int) -> str:
        """From ``host``, try the writes a worker makes, as run ``run`` of the job: a heartbeat,
        an epoch, a log line, the final status. Returns what each did ("refused" when fenced)."""
        out = subprocess.run(["ip", "netns", "exec", host, sys.executable, "-c", _WRITE_AS_RUN, self.database_url,
                              job_id, str(run)], cwd=ROOT, env=self.env(self.root / host), capture_output=True,
                             text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"the writes from {host} failed:\n{out.stderr[-3000:]}")
        return out.stdout.strip()

    def cut_off(self, host: str) -> None:
        """Unplug the host: its side of the link loses carrier and its packets go nowhere."""
        _run("ip", "link", "set", host, "down")

    def reconnect(self, host: str) -> None:
        _run("ip", "link", "set", host, "up")

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        if self.store is not None:
            self.store.engine.dispose()
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:  # PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for its clients)
                proc.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
        deadline = time.monotonic() + 10  # for all of them together: they stop in parallel
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._undo.close()
