"""Defaults, all overridable: per client (``Client(timeout=..., max_retries=...)``,
``client.with_options(...)``) and per call (``timeout=``, ``max_retries=``)."""

from __future__ import annotations

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
BASE_URL_ENV = "TRAINRX_URL"
TOKEN_ENV = "TRAINRX_TOKEN"

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_MAX_RETRIES = 2

INITIAL_RETRY_DELAY = 0.5  # seconds before the first retry; doubles each time
MAX_RETRY_DELAY = 8.0
RETRY_JITTER = 0.25  # each delay is shortened by up to this fraction, at random
MAX_RETRY_AFTER = 60.0  # a Retry-After longer than this is not honoured (the backoff applies)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # and every other 5xx

# The server sends a keep-alive comment every 15 s; silence for three of them means the stream is dead.
STREAM_READ_TIMEOUT = 45.0
STREAM_CONNECT_TIMEOUT = 10.0
DEFAULT_WAIT_TIMEOUT = 600.0
DEFAULT_POLL_INTERVAL = 1.0
# The exports (.pt2, ONNX) follow the job as a task of their own: download_model waits for them this long.
DEFAULT_MODEL_WAIT_TIMEOUT = 300.0

IDEMPOTENCY_HEADER = "Idempotency-Key"
