"""``make run``: the whole service on one machine, owned by this process.

Migrates the database, makes sure an admin token exists (``TRAINRX_BOOTSTRAP_TOKEN``,
else one generated once into ``$TRAINRX_DATA_DIR/dev-token``), starts an embedded
Redis when ``REDIS_URL`` is unset (it lives as long as this process), one Celery
worker and the API under gunicorn; prints a curl command that submits a first
job with that token; stops everything it started on Ctrl-C or SIGTERM.

Once the stack is up, a child that dies is restarted (``core/supervision.py``)
and the others keep running: the API keeps answering while a worker or the
embedded Redis comes back, and a restarted Redis listens on the same socket, so
the API and the worker reconnect by themselves. A child that dies before the
stack is up stops it: that is a configuration to fix, which no restart would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from core import migrate
from core.db import make_engine
from core.embedded_redis import EmbeddedRedis
from core.settings import Settings
from core.supervision import Child, GaveUp, Supervisor
from core.tokens import BOOTSTRAP_ENV, TokenStore, bootstrap_admin_token

# gevent workers: live event streams must not pin a thread each (see the file).
GUNICORN_CONF = str(Path(__file__).resolve().parents[1] / "service" / "gunicorn_conf.py")

REDIS = "redis"  # the embedded Redis's name among the children: stopped last

FIRST_JOB = {
    "name": "digits-relu",
    "dataset": {"name": "digits"},
    "architecture": {"hidden_layers": [128]},
    "activation": "relu",
    "optimizer": {"name": "adam", "learning_rate": 0.001},
    "patience": 5,
    "epochs": 20,
}


class Stack:
    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.port = int(os.environ.get("PORT") or 8000)
        self.host = os.environ.get("TRAINRX_HOST") or "127.0.0.1"
        self.redis: EmbeddedRedis | None = None
        self.supervisor = Supervisor()
        self.stopping = False
        self.token = ""
        self.token_source = ""

    def _spawn(self, name: str, args: list[str], env: dict, *, own_process_group: bool = False) -> None:
        def launch() -> subprocess.Popen:
            return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, start_new_session=own_process_group)

        self.supervisor.start(Child(name, launch, own_process_group=own_process_group))

    def _launch_redis(self) -> subprocess.Popen:
        # Its own session: Ctrl-C must not stop Redis before the worker has handed its
        # running job back to the queue; stop() stops it last.
        self.redis.start(start_new_session=True)
        return self.redis.process

    def prepare_database(self) -> None:
        """Migrate the schema and make sure the bootstrap admin token exists."""
        engine = make_engine(self.settings.database_url)
        try:
            before = migrate.current_revision(engine)
            migrate.upgrade(engine)
            after = migrate.current_revision(engine)
            if before != after:
                print(f"trainrx: database migrated {before or 'empty'} -> {after}", flush=True)
            self.token, self.token_source = bootstrap_admin_token(
                TokenStore(engine), self.settings.data_dir, os.environ.get(BOOTSTRAP_ENV))
        finally:
            engine.dispose()

    def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_database()
        env = dict(os.environ, TRAINRX_DATA_DIR=str(self.settings.data_dir))
        if not self.settings.redis_url:
            self.redis = EmbeddedRedis(self.settings.data_dir / "redis")
            self.supervisor.start(Child(REDIS, self._launch_redis, own_process_group=True))
            env["REDIS_URL"] = self.redis.url
            print(f"trainrx: embedded Redis on {self.redis.socket}", flush=True)
        if not os.environ.get("DATABASE_URL"):
            print(f"trainrx: SQLite at {self.settings.data_dir / 'trainrx.db'}", flush=True)
        py = sys.executable
        self._spawn("worker", [py, "-m", "celery", "-A", "workers.celery_app", "worker",
                               "-Q", self.settings.default_queue, "--pool", "threads", "--concurrency", "1",
                               "-n", f"{self.settings.default_queue}-%h", "--loglevel", "INFO",
                               "--without-gossip", "--without-mingle"], env)
        self._spawn("api", [py, "-m", "gunicorn", "-c", GUNICORN_CONF, "--bind", f"{self.host}:{self.port}",
                            "--access-logfile", "-", "service.wsgi:app"], env,
                    # Ctrl-C reaches the whole process group; gevent workers quit noisily on SIGINT.
                    # gunicorn stops gracefully on the SIGTERM that stop() sends it instead.
                    own_process_group=True)

    def wait_ready(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline and not self.stopping:
            if self._dead_child():
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if json.load(resp).get("workers", 0) >= 1:
                        return True
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
        return False

    def _dead_child(self) -> str | None:
        dead = self.supervisor.first_dead()
        return dead.name if dead else None

    def supervise(self) -> None:
        """Restart children that die, until Ctrl-C or SIGTERM (KeyboardInterrupt) or GaveUp."""
        while True:
            self.supervisor.check()
            time.sleep(0.5)

    def stop(self) -> None:
        """The API first, then the worker (warm: a running job goes back to the queue), Redis last."""
        self.stopping = True
        children = [child for child in reversed(self.supervisor.children) if child.name != REDIS and child.alive]
        for child in children:
            child.proc.send_signal(signal.SIGTERM)  # gunicorn: graceful; celery: warm (running jobs requeue)
        for child in children:
            try:
                child.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"trainrx: {child.name} did not stop in time; killing it", flush=True)
                child.proc.kill()
                child.proc.wait()
        if self.redis is not None:
            self.redis.stop()
        print("trainrx: stopped", flush=True)

    def first_job_hint(self) -> str:
        body = json.dumps(FIRST_JOB)
        base = f"http://127.0.0.1:{self.port}"
        auth = f"-H 'Authorization: Bearer {self.token}'"
        return (f"\ntrainrx is up on {base}  (Ctrl-C stops everything)\n\n"
                f"Admin token (from {self.token_source}):\n\n  export TRAINRX_TOKEN={self.token}\n\n"
                f"Submit a first job:\n\n"
                f"  curl -sS -X POST {base}/v1/jobs {auth} -H 'Content-Type: application/json' -d '{body}'\n\n"
                f"Then follow it: curl -sS {auth} {base}/v1/jobs/<id>  (and /curves, /diagnosis, /weights)\n"
                f"Or open the dashboard in a browser and log in with the token: {base}/\n"
                f"More tokens: POST /v1/tokens, or python -m service.admin tokens create --owner NAME\n")


def main() -> int:
    stack = Stack()

    def _on_signal(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_signal)
    # Ctrl-C stops the stack even when it was started with SIGINT ignored (a shell starts background
    # jobs that way, and nohup passes it on): Python only turns SIGINT into KeyboardInterrupt by itself
    # when it was not ignored at start-up.
    signal.signal(signal.SIGINT, _on_signal)
    # A closed terminal: Redis and the API run in sessions of their own and would not hear it.
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        stack.start()
        if not stack.wait_ready():
            dead = stack._dead_child()
            print(f"trainrx: the stack did not come up ({dead or 'timeout'}); stopping", file=sys.stderr)
            return 1
        print(stack.first_job_hint(), flush=True)
        stack.supervise()
    except GaveUp as exc:
        print(f"trainrx: {exc}; stopping the stack", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ntrainrx: stopping...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
