"""JSON request bodies, parsed once and strictly, before any view sees them.

The standard library's parser accepts what this API must refuse: ``NaN`` and
``Infinity``, numbers that overflow a double (``1e400``), lone UTF-16 surrogates
(``"\\ud800"``, which no database or JSON encoder downstream can store), and
nesting so deep that it raises ``RecursionError`` here or in the schemas later.
Each is a 400 whose message names the problem; a body over the size limit is a
413, also when it arrives chunked without a ``Content-Length``.

``init_app`` makes ``request.get_json()`` strict everywhere (the JSON provider
parses, the request class turns a refusal into a 400 that says why), and
``check_json_body`` runs before every view. The schemas
(webargs) read the same bytes again with the standard parser, which accepts
everything this one does.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Flask, Request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import abort
from werkzeug.exceptions import RequestEntityTooLarge

MAX_DEPTH = 64  # far deeper than any request this API takes (about 4 levels), far below the recursion limit
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE_METHODS = ("POST", "PUT", "PATCH")


class JsonBodyInvalid(ValueError):
    """The body is not JSON this API accepts; the message says why."""


def _constant(name: str) -> float:
    raise JsonBodyInvalid(f"The body is not valid JSON: {name} is not a JSON number.")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonBodyInvalid(f"The number {text[:40]} is too large (it overflows a 64-bit float).")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 309:  # past a double's range, and int() of a few thousand digits refuses anyway
        raise JsonBodyInvalid(f"The number {text[:40]}... is too large (it overflows a 64-bit float).")
    return int(text)


def _check_structure(value: Any) -> None:
    """Depth and strings, walked with an explicit stack: no recursion to blow up."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            if isinstance(item, str) and _SURROGATE.search(item):
                raise JsonBodyInvalid("The body holds a lone UTF-16 surrogate (such as \\ud800), which is not "
                                      "text: send valid Unicode.")
            continue
        if depth > MAX_DEPTH:
            raise JsonBodyInvalid(f"The body nests deeper than {MAX_DEPTH} levels.")
        stack.extend((child, depth + 1) for child in children)


def loads(data: bytes | str) -> Any:
    """Parse a request body, or raise JsonBodyInvalid naming the problem."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonBodyInvalid(f"The body is not valid UTF-8 ({exc.reason} at byte {exc.start}).") from None
    try:
        value = json.loads(data, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise JsonBodyInvalid(f"The body nests deeper than {MAX_DEPTH} levels.") from None
    except JsonBodyInvalid:
        raise
    except ValueError as exc:  # json.JSONDecodeError among them
        raise JsonBodyInvalid(f"The body is not valid JSON: {exc}.") from None
    _check_structure(value)
    return value


class StrictJsonProvider(DefaultJSONProvider):
    """The app's JSON provider: Flask parses request bodies through its ``loads``."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


class JsonBodyRequest(Request):
    """Says why a body was refused (Flask's own request class drops the reason)."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if isinstance(e, JsonBodyInvalid):
            abort(400, message=str(e))
        return super().on_json_loading_failed(e)


def init_app(app: Flask) -> None:
    app.request_class = JsonBodyRequest
    app.json = StrictJsonProvider(app)


def check_json_body(request: Request) -> None:
    """Before every view: a body sent with POST, PUT or PATCH must be JSON (415), within
    the size limit (413) and parse strictly (400). Parsed here once and cached."""
    if request.method not in _UNSAFE_METHODS or request.content_length == 0:
        return
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        limit = request.max_content_length
        abort(413, message=f"The body is larger than the {limit:,}-byte limit." if limit else None)
    if not data:
        return
    if not request.is_json:
        abort(415, message="The body must be JSON: send Content-Type: application/json.")
    request.get_json()

