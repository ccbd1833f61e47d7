"""One error body shape for the whole API:
``{"code": 422, "status": "Unprocessable Entity", "message": "...", "errors": {...}}``."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask_smorest import Api
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, InternalServerError, UnprocessableEntity

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


class TrainrxApi(Api):
    def handle_http_exception(self, error: HTTPException):
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
        body = error_body(error.code or 500, error.name, message, errors)
        return body, error.code, data.get("headers", {})


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return jsonify(error_body(422, UnprocessableEntity.name, None, exc.messages)), 422

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return app.extensions["trainrx_api"].handle_http_exception(exc)
        log.exception("unhandled error")
        return jsonify(error_body(500, InternalServerError.name)), 500
