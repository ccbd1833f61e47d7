"""The application factory: defaults, then the environment, then test overrides."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from core import __version__
from core.settings import Settings
from core.spec import ACTIVATIONS, OPTIMIZERS, JobRequestSchema
from service import datasets_api, health_api, jobs_api
from service import job_files_api  # noqa: F401  (adds logs, model and DELETE routes to the jobs blueprint)
from core.tokens import TokenStore
from service import dashboard, events_api, owner_events_api, request_ids, tokens_api
from service.auth import Auth, check_explicit_secret, load_or_create_secret
from service.errors import TrainrxApi, register_error_handlers
from service.extensions import Parts
from service import json_bodies, logs, metrics, plots_api, quotas, report_api, sweeps_api
from service.openapi_extras import OpenApiExtras

MAX_JSON_BYTES = 1 * 1024 * 1024


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the API. ``config`` may carry ``SETTINGS`` (a core.settings.Settings) to
    override what the environment says."""
    app = Flask(__name__)
    metrics.init_app(app)  # first: its timer starts before every other hook; serves /metrics
    json_bodies.init_app(app)  # strict JSON bodies
    app.config.update(
        API_TITLE="trainrx",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=MAX_JSON_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config or {})
    settings: Settings = app.config.get("SETTINGS") or Settings.from_env()
    app.config["SETTINGS"] = settings
    check_explicit_secret(settings.secret_key)  # before anything connects: a placeholder secret stops here
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.extensions["trainrx"] = Parts.connect(settings)

    app.json.sort_keys = False
    extras = OpenApiExtras()
    api = TrainrxApi(app, spec_kwargs={"info": {"description": "Training as a service with a doctor inside."},
                                       "extra_plugins": [extras]})
    app.extensions["trainrx_api"] = api
    for variants in (ACTIVATIONS, OPTIMIZERS):
        for schema in variants.values():
            api.spec.components.schema(schema.__name__, schema=schema)
    api.spec.components.schema("JobRequest", schema=JobRequestSchema)  # POST /v1/jobs validates in the view
    api.register_blueprint(jobs_api.blp)
    api.register_blueprint(datasets_api.blp)
    api.register_blueprint(health_api.blp)
    api.register_blueprint(events_api.blp)
    api.register_blueprint(owner_events_api.blp)
    api.register_blueprint(tokens_api.blp)
    api.register_blueprint(plots_api.blp)
    api.register_blueprint(report_api.blp)
    api.register_blueprint(sweeps_api.blp)
    extras.add_links()
    _document_security(api)
    register_error_handlers(app)
    request_ids.init_app(app)
    logs.init_app(app)  # json logs: every line names its request id and owner
    Auth(app, TokenStore(app.extensions["trainrx"].store.engine),
         settings.secret_key or load_or_create_secret(settings.data_dir))
    quotas.init_app(app, settings)  # after Auth: the rate limit is per owner
    events_api.init_app(app, settings)
    dashboard.init_app(app)  # GET / and its pages: not part of the API (nor of openapi.yaml)

    @app.before_request
    def _per_request() -> None:
        if datasets_api.is_upload(request):  # multipart, with its own size cap
            return
        json_bodies.check_json_body(request)  # 415, 413 or 400 here, for every endpoint

    return app


def _document_security(api: TrainrxApi) -> None:
    """Every /v1 operation needs a Bearer token (or the session cookie); /healthz and
    /openapi.json need none."""
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer",
                                                       "description": "An API token (trx_...)."})
    api.spec.components.security_scheme("sessionCookie", {
        "type": "apiKey", "in": "cookie", "name": "trainrx_session",
        "description": "Set by POST /v1/session; unsafe methods also need the X-CSRF-Token header."})
    api.spec.options["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]
