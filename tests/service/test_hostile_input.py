"""Hostile and broken input: every client mistake is a 4xx with the standard error body,
never a 5xx, and the error handlers themselves never raise."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from tests.service.test_api import assert_error_shape


@pytest.fixture(scope="module")
def throwaway(settings):
    """An app of its own with routes that fail the way views must never fail."""
    from service import create_app

    app = create_app({"SETTINGS": settings})

    @app.get("/_boom")
    def _boom():
        raise RuntimeError("an unexpected bug")

    @app.get("/_invalid")
    def _invalid():
        raise ValidationError({"field": ["Not like this."]})

    return app


def test_an_unexpected_exception_is_a_500_with_the_standard_body(throwaway, caplog):
    body = assert_error_shape(throwaway.test_client().get("/_boom"), 500)
    assert body == {"code": 500, "status": "Internal Server Error", "message": "Something went wrong on our side."}
    # Answered by our handler at the first try: Flask's last-resort handler (which logs
    # "Exception on /_boom") never ran, so the handler itself did not raise.
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [(r.name, r.getMessage()) for r in errors] == [("trainrx.api", "unhandled error")]
    assert isinstance(errors[0].exc_info[1], RuntimeError)


def test_a_validation_error_outside_the_schemas_is_a_422_with_the_standard_body(throwaway):
    body = assert_error_shape(throwaway.test_client().get("/_invalid"), 422)
    assert body["status"] == "Unprocessable Entity" and body["errors"] == {"field": ["Not like this."]}
