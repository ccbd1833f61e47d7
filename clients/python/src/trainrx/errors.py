"""Every error the SDK raises.

::

    TrainrxError
    ├── APIError                      status_code, body, request_id, errors
    │   ├── APIConnectionError        the server could not be reached (or the connection broke)
    │   │   └── APITimeoutError       no answer in time
    │   └── APIStatusError            the server answered 4xx/5xx
    │       ├── BadRequestError           400
    │       ├── AuthenticationError       401
    │       ├── PermissionDeniedError     403
    │       ├── NotFoundError             404
    │       ├── ConflictError             409
    │       ├── UnprocessableEntityError  422 (``errors``: the server's field errors)
    │       ├── RateLimitError            429
    │       └── InternalServerError       5xx
    ├── SpecError                     a spec file that cannot be read
    └── WaitTimeoutError              ``jobs.wait`` ran out of time (also a TimeoutError)
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "TrainrxError", "APIError", "APIConnectionError", "APITimeoutError", "APIStatusError", "BadRequestError",
    "AuthenticationError", "PermissionDeniedError", "NotFoundError", "ConflictError", "UnprocessableEntityError",
    "RateLimitError", "InternalServerError", "SpecError", "WaitTimeoutError",
]


class TrainrxError(Exception):
    """Base class of everything this package raises."""


class APIError(TrainrxError):
    """Talking to the API went wrong. ``status_code``, ``body``, ``request_id`` and
    ``errors`` are None when the server never answered."""

    status_code: int | None = None

    def __init__(self, message: str, *, request: httpx.Request | None = None, body: Any = None,
                 request_id: str | None = None, errors: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.body = body
        self.request_id = request_id
        self.errors = errors


class APIConnectionError(APIError):
    def __init__(self, message: str = "Could not connect to the trainrx API.", *,
                 request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    def __init__(self, message: str = "The trainrx API did not answer in time.", *,
                 request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class APIStatusError(APIError):
    """The server answered with an error status; ``body`` is its error document
    (``{"code", "status", "message", "errors"}``)."""

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        errors = body.get("errors") if isinstance(body, dict) and isinstance(body.get("errors"), dict) else None
        super().__init__(message, request=response.request, body=body,
                         request_id=response.headers.get("x-request-id"), errors=errors)
        self.response = response
        self.status_code = response.status_code

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    """The request was understood but is invalid; ``errors`` names every bad field,
    nested like the request (``{"architecture": {"hidden_layers": ["..."]}}``)."""

    def __str__(self) -> str:
        if not self.errors:
            return super().__str__()
        return f"{super().__str__()} {format_field_errors(self.errors, inline=True)}"


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class SpecError(TrainrxError, ValueError):
    """A spec (file) that cannot be read as a JSON object."""


class WaitTimeoutError(TrainrxError, TimeoutError):
    """``jobs.wait`` gave up; the job goes on (``job`` is how it was last seen)."""

    def __init__(self, job_id: str, timeout: float, job: Any = None, *, kind: str = "Job") -> None:
        super().__init__(f"{kind} {job_id} did not finish within {timeout:g} s.")
        self.job_id, self.timeout, self.job = job_id, timeout, job


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 422: UnprocessableEntityError, 429: RateLimitError,
}


def status_error(response: httpx.Response) -> APIStatusError:
    """The error for an error response (its body already read)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text or None
    message = body.get("message") if isinstance(body, dict) and body.get("message") else None
    message = message or f"{response.status_code} {response.reason_phrase}".strip()
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(message, response=response, body=body)


def format_field_errors(errors: dict, *, inline: bool = False, prefix: str = "") -> str:
    """``{"a": {"b": ["msg"]}}`` as ``a.b: msg`` lines (or one line joined by '; ')."""
    lines: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list) and all(isinstance(v, str) for v in node):
            lines.append(f"{path or '(request)'}: {' '.join(node)}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        else:
            lines.append(f"{path or '(request)'}: {node}")

    walk(errors, prefix)
    return "; ".join(lines) if inline else "\n".join(lines)
