"""Logs as one JSON object per line, or as plain text: ``TRAINRX_LOG_FORMAT=json|text``.

``text`` (the default, and what ``make run`` shows) leaves logging as it was:
gunicorn's and Celery's own formats. ``json`` (the compose file's default) writes
every event of the API and the workers as one line on stderr::

    {"ts": "2026-11-30T08:15:41.123Z", "level": "INFO", "logger": "trainrx.api",
     "message": "GET /v1/jobs/<job_id> 200", "component": "api", "host": "api-1",
     "pid": 12, "request_id": "4f0c...", "owner": "alice", "job_id": "9a1e...", ...}

``request_id``, ``owner`` and ``job_id`` come from *context sources*: the API
adds one that reads the current Flask request (service/logs.py), the workers one
that reads the job a worker thread is running (:func:`bind_job`). Anything
passed as ``extra=`` to a log call becomes a field too.

This module imports neither Flask nor Celery: gunicorn's configuration names
:class:`JsonFormatter` before any application code is loaded.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import socket
import sys
from datetime import datetime, timezone
from typing import Callable

LOG_FORMAT_ENV = "TRAINRX_LOG_FORMAT"
TEXT, JSON = "text", "json"
COMPONENT_ENV = "TRAINRX_LOG_COMPONENT"
# Loggers whose INFO lines are events worth a line: ours, Celery's (task received, succeeded)
# and gunicorn's own (start, worker boot and exit). gunicorn's access log is left out:
# service/logs.py writes one richer line per request.
OWN_LOGGERS = ("trainrx", "celery", "gunicorn.error")

# A LogRecord's own attributes; every other attribute came from ``extra=`` or a filter.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                      "taskName"}
_sources: list[Callable[[], dict]] = []
_job: contextvars.ContextVar[dict | None] = contextvars.ContextVar("trainrx_log_job", default=None)


def log_format() -> str:
    value = (os.environ.get(LOG_FORMAT_ENV) or TEXT).strip().lower()
    if value not in (TEXT, JSON):
        raise ValueError(f"{LOG_FORMAT_ENV} must be 'json' or 'text', got {value!r}")
    return value


def add_context_source(source: Callable[[], dict]) -> None:
    """Fields every JSON line gets while ``source()`` returns them (once per source)."""
    if source not in _sources:
        _sources.append(source)


def bind_job(job_id: str | None, owner: str | None = None) -> contextvars.Token:
    """Lines logged from this thread (or context) name this job and owner until :func:`unbind_job`."""
    current = _job.get() or {}
    fields = {"job_id": job_id or current.get("job_id"), "owner": owner or current.get("owner")}
    return _job.set({k: v for k, v in fields.items() if v})


def unbind_job(token: contextvars.Token | None = None) -> None:
    if token is not None:
        _job.reset(token)
    else:
        _job.set(None)


def _job_context() -> dict:
    return _job.get() or {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, where it ran, its context."""

    def __init__(self, *args, component: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.component = component or os.environ.get(COMPONENT_ENV) or _guess_component()
        self.host = socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "component": self.component,
            "host": self.host,
            "pid": record.process,
        }
        for source in (_job_context, *_sources):
            try:
                entry.update({k: v for k, v in source().items() if v is not None})
            except Exception:  # a context source must never cost a log line
                continue
        entry.update({k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _guess_component() -> str:
    argv = " ".join(sys.argv)
    if "celery" in argv or "gpu_workers" in argv:
        return "worker"
    return "api" if "gunicorn" in argv else os.path.basename(sys.argv[0] or "python")


def configure(component: str, level: int | str = logging.INFO) -> bool:
    """In json mode, send the root logger's records to stderr as JSON lines (once per
    process; handlers already formatting JSON, such as gunicorn's, are kept). Returns
    whether json mode is on. In text mode nothing changes."""
    if log_format() != JSON:
        return False
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(component=component))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries' chatter (alembic, onnx) only when it matters
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    return True


def gunicorn_logconfig() -> dict | None:
    """gunicorn's ``logconfig_dict`` in json mode (its own lines as JSON too), else None."""
    if log_format() != JSON:
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "core.logging_setup.JsonFormatter", "component": "api"}},
        "handlers": {"json": handler},
        "root": {"level": "WARNING", "handlers": ["json"]},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
                    "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False}},
    }
