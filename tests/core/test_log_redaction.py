"""A job's own log says nothing about the server: no absolute paths, no host names."""

from __future__ import annotations

import pytest

from core import log_redaction
from core.log_redaction import describe_exception, redact, worker_label


@pytest.fixture()
def host(monkeypatch):
    monkeypatch.setattr(log_redaction.socket, "gethostname", lambda: "gpu-node-7.corp.example")
    log_redaction._host_names.cache_clear()
    yield "gpu-node-7.corp.example"
    log_redaction._host_names.cache_clear()


@pytest.mark.parametrize("text,expected", [
    ('File "/srv/trainrx/workers/engine/loop.py", line 88, in run', 'File "loop.py", line 88, in run'),
    ("No such file: '/var/lib/trainrx/datasets/0f3a/x.npy'", "No such file: 'x.npy'"),
    ("cannot write /tmp/exports/ (disk full)", "cannot write exports (disk full)"),
    ("worker cpu-1@gpu-node-7 starts", "worker cpu-1@<host> starts"),
    ("connecting to gpu-node-7.corp.example:6379", "connecting to <host>:6379"),
    # left alone: URLs, relative paths, fractions, API paths of one segment, other words
    ("redis://cache:6379/0 and https://example.org/a/b", "redis://cache:6379/0 and https://example.org/a/b"),
    ("data/x.npy, 1/2 of the rows, /healthz", "data/x.npy, 1/2 of the rows, /healthz"),
    ("gpu-node-70 is another host", "gpu-node-70 is another host"),
])
def test_paths_and_host_names_are_redacted(host, text, expected):
    assert redact(text) == expected


def test_an_exception_is_its_type_and_a_redacted_message(host):
    error = FileNotFoundError(2, "No such file or directory", "/home/ops/trainrx/var/artifacts/abc/model.pt2")
    assert describe_exception(error) == "FileNotFoundError: [Errno 2] No such file or directory: 'model.pt2'"
    assert describe_exception(KeyError()) == "KeyError"
    assert worker_label("cpu-1@gpu-node-7.corp.example") == "cpu-1" and worker_label("solo") == "solo"
