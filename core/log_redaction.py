"""What a job's own log (served to its user at GET /v1/jobs/{id}/logs) may say about the
server it ran on: nothing. No absolute paths (a file keeps its base name), no host
names (a Celery node keeps its name without ``@host``), no tracebacks (the
operator's log, Python logging, keeps those in full).
"""

from __future__ import annotations

import re
import socket
from functools import lru_cache

# An absolute path of two components or more, not part of a URL ("redis://h/0") or of a
# relative path ("a/b"); it ends at white space, quotes, brackets or punctuation.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"`,;:()\[\]{}<>]+/[^\s'\"`,;:()\[\]{}<>]*")
HOST = "<host>"


@lru_cache(maxsize=1)
def _host_names() -> re.Pattern | None:
    name = socket.gethostname()
    names = {n for n in (name, name.split(".")[0]) if len(n) >= 2}
    if not names:
        return None
    return re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")(?![\w-])")


def _base_name(match: re.Match) -> str:
    path = match.group(0).rstrip("/")
    return path.rsplit("/", 1)[-1] or "/"


def redact(text: str) -> str:
    """Absolute paths replaced by their base names, this host's names by ``<host>``."""
    text = _ABSOLUTE_PATH.sub(_base_name, text)
    hosts = _host_names()
    return hosts.sub(HOST, text) if hosts else text


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` for a user: the traceback stays in the operator's log."""
    message = redact(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def worker_label(node_name: str) -> str:
    """A Celery node name (``name@host``) without its host."""
    return node_name.split("@", 1)[0] or "worker"
