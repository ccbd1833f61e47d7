"""The API's structured logs (``TRAINRX_LOG_FORMAT=json``, core/logging_setup.py): every
line logged while a request is served names its request id, its owner and the job in
its path, and every request ends with one ``request`` line of its own."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, has_request_context, request

from core import logging_setup

log = logging.getLogger("trainrx.api")


def request_context() -> dict:
    if not has_request_context():
        return {}
    principal = g.get("principal")
    return {"request_id": g.get("request_id"), "owner": getattr(principal, "owner", None),
            "job_id": (request.view_args or {}).get("job_id")}


def init_app(app: Flask) -> None:
    if not logging_setup.configure("api"):
        return  # text: gunicorn's access log says the rest
    logging_setup.add_context_source(request_context)

    @app.after_request
    def _request_line(response: Response) -> Response:
        started = g.get("request_started")
        log.info("%s %s %s", request.method, request.path, response.status_code, extra={
            "event": "request", "method": request.method, "path": request.path,
            "endpoint": request.url_rule.rule if request.url_rule is not None else None,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started is not None else None})
        return response
