"""The client: configuration, one HTTP connection pool, and the retry policy.

Retries (exponential backoff with jitter, honouring ``Retry-After``) happen on
connection errors, timeouts, 408, 429 and 5xx — for requests that are safe to
repeat: GET, HEAD, PUT, DELETE, and a POST only when it carries an
``Idempotency-Key`` (the server then answers a repeat with the first result).
A 409 is never retried: it is the server saying no.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from typing import Any, Mapping

import httpx

from trainrx import _constants as C
from trainrx._version import __version__
from trainrx.errors import APIConnectionError, APITimeoutError, status_error

TimeoutTypes = float | httpx.Timeout | None

_NOT_GIVEN: Any = object()
_SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return seconds if 0 <= seconds <= C.MAX_RETRY_AFTER else None


def backoff_delay(retries_done: int) -> float:
    """Exponential backoff with jitter: about 0.5, 1, 2, 4, 8, 8, ... seconds."""
    delay = min(C.INITIAL_RETRY_DELAY * 2 ** retries_done, C.MAX_RETRY_DELAY)
    return delay * (1 - C.RETRY_JITTER * random.random())


def _should_retry(response: httpx.Response) -> bool:
    return response.status_code in C.RETRY_STATUSES or response.status_code >= 500


class Client:
    """A trainrx API client.

    ``base_url`` and ``token`` default to ``TRAINRX_URL`` (else
    http://127.0.0.1:8000) and ``TRAINRX_TOKEN`` (sent as ``Authorization: Bearer``).
    """

    def __init__(self, *, base_url: str | None = None, token: str | None = None,
                 timeout: TimeoutTypes = C.DEFAULT_TIMEOUT, max_retries: int = C.DEFAULT_MAX_RETRIES,
                 headers: Mapping[str, str] | None = None, http_client: httpx.Client | None = None) -> None:
        from trainrx.resources.datasets import Datasets
        from trainrx.resources.jobs import Jobs
        from trainrx.resources.plots import Plots
        from trainrx.resources.sweeps import Sweeps
        from trainrx.resources.tokens import Tokens

        self.base_url = (base_url or os.environ.get(C.BASE_URL_ENV) or C.DEFAULT_BASE_URL).rstrip("/")
        self.token = token if token is not None else (os.environ.get(C.TOKEN_ENV) or None)
        self.timeout = timeout
        self.max_retries = max_retries
        default_headers = {"User-Agent": f"trainrx-python/{__version__}", "Accept": "application/json"}
        if self.token:
            default_headers["Authorization"] = f"Bearer {self.token}"
        default_headers.update(headers or {})
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(base_url=self.base_url, headers=default_headers, timeout=timeout)
        self.jobs = Jobs(self)
        self.datasets = Datasets(self)
        self.tokens = Tokens(self)
        self.plots = Plots(self)
        self.sweeps = Sweeps(self)

    def with_options(self, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int = _NOT_GIVEN) -> "Client":
        """A client with other defaults that shares this one's connections."""
        copy = Client(base_url=self.base_url, token=self.token, http_client=self._http,
                      timeout=self.timeout if timeout is _NOT_GIVEN else timeout,
                      max_retries=self.max_retries if max_retries is _NOT_GIVEN else max_retries)
        copy._owns_http = False
        return copy

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    # --- requests ------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                files: Any = None, data: Any = None, headers: Mapping[str, str] | None = None,
                timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None,
                stream: bool = False) -> httpx.Response:
        """Send a request with the retry policy; returns a 2xx/3xx response or raises.

        With ``stream=True`` the response body is not read: close the response.
        """
        method = method.upper()
        retries = self.max_retries if max_retries is None else max_retries
        headers = dict(headers or {})
        repeatable = method in _SAFE_METHODS or any(k.lower() == C.IDEMPOTENCY_HEADER.lower() for k in headers)
        params = {k: v for k, v in (params or {}).items() if v is not None}
        timeout = self.timeout if timeout is _NOT_GIVEN else timeout
        done = 0
        while True:
            request = self._http.build_request(method, path, json=json, params=params or None, files=files,
                                               data=data, headers=headers, timeout=timeout)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                if repeatable and done < retries:
                    time.sleep(backoff_delay(done))
                    done += 1
                    continue
                raise APITimeoutError(request=request) from exc
            except httpx.TransportError as exc:
                if repeatable and done < retries:
                    time.sleep(backoff_delay(done))
                    done += 1
                    continue
                raise APIConnectionError(f"Could not connect to the trainrx API at {self.base_url}: {exc}",
                                         request=request) from exc
            if response.status_code < 400:
                return response
            if repeatable and done < retries and _should_retry(response):
                delay = _retry_after(response)
                response.close()
                time.sleep(backoff_delay(done) if delay is None else delay)
                done += 1
                continue
            response.read()
            response.close()
            raise status_error(response)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def me(self, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> "Identity":
        """Who this client's token belongs to: owner, role and the token's record."""
        from trainrx.types import Identity, build

        return build(Identity, self.get_json("/v1/me", timeout=timeout, max_retries=max_retries))
