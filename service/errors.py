"""One error body shape for the whole API:
``{"code": 422, "status": "Unprocessable Entity", "message": "...", "errors": {...}}``."""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, jsonify
from flask_smorest import Api
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from core.db import is_transient

log = logging.getLogger("trainrx.api")

_DEFAULT_MESSAGES = {
    400: "The request could not be understood.",
    404: "No such resource.",
    405: "This method is not allowed here.",
    409: "The request conflicts with the resource's current state.",
    413: "The request body is too large.",
    415: "The body must be JSON (Content-Type: application/json).",
    422: "The request is invalid.",
    500: "Something went wrong on our side.",
    503: "A service this API depends on is unavailable.",
}


def error_body(code: int, status: str, message: str | None = None, errors: dict | None = None) -> dict:
    body = {"code": code, "status": status, "message": message or _DEFAULT_MESSAGES.get(code, status)}
    if errors:
        body["errors"] = errors
    return body


def _flatten_locations(errors: dict) -> dict:
    """webargs nests errors under their location ("json", "query"); the request's own
    structure is what a client needs to see."""
    if isinstance(errors, dict) and len(errors) == 1:
        (location, inner), = errors.items()
        if location in ("json", "query", "headers", "form", "files") and isinstance(inner, dict):
            return inner
    return errors


# Seconds a client waits before retrying a request the database was too busy for:
# about the API's lock wait (service/extensions.py), after which a lock is usually gone.
DB_BUSY_RETRY_AFTER_S = 2


def internal_error() -> Response:
    """The 500 answer, built from constants only: what an error handler falls back to
    when it fails itself, so that no error path can raise again."""
    body = json.dumps(error_body(500, HTTP_STATUS_CODES[500]))
    return Response(body, status=500, mimetype="application/json")


class TrainrxApi(Api):
    def handle_http_exception(self, error: HTTPException):
        try:
            return self._error_response(error)
        except Exception:  # noqa: BLE001 — an error handler must answer, never raise
            log.exception("the error handler failed on %r", error)
            return internal_error()

    def _error_response(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        message = data.get("message")
        if errors:
            errors = _flatten_locations(errors)
            if isinstance(errors, dict) and list(errors) == ["_schema"] and error.code in (400, 422):
                message, errors = "; ".join(map(str, errors["_schema"])), None
                if message == "Invalid input type.":
                    message = "The body must be a JSON object."
        if error.code == 400 and errors and "Invalid JSON body." in str(errors):
            message, errors = "The body is not valid JSON.", None
        if message is None and error.code not in _DEFAULT_MESSAGES:
            message = error.description
        code = error.code or 500
        body = error_body(code, HTTP_STATUS_CODES.get(code, "Unknown Error"), message, errors)
        return jsonify(body), code, data.get("headers", {})


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        try:
            return jsonify(error_body(422, HTTP_STATUS_CODES[422], None, exc.messages)), 422
        except Exception:  # noqa: BLE001
            log.exception("could not answer a validation error")
            return internal_error()

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeoutError)
    def _database(exc: Exception):
        """A database that is locked or out of reach is a 503 the client may retry; any other
        database error is a fault of ours (500)."""
        try:
            if not is_transient(exc):
                log.error("database error", exc_info=exc)
                return internal_error()
            log.warning("database busy or unavailable: %s", type(getattr(exc, "orig", exc)).__name__)
            body = error_body(503, HTTP_STATUS_CODES[503], "The database is busy or unavailable; retry in "
                              f"{DB_BUSY_RETRY_AFTER_S} seconds.")
            return jsonify(body), 503, {"Retry-After": str(DB_BUSY_RETRY_AFTER_S)}
        except Exception:  # noqa: BLE001 — an error handler must answer, never raise
            log.exception("could not answer a database error")
            return internal_error()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return app.extensions["trainrx_api"].handle_http_exception(exc)
        log.error("unhandled error", exc_info=exc)
        return internal_error()
