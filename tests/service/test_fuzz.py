"""schemathesis on openapi.yaml: every operation, in-process, as a user.

The document on disk is what is checked (test_api.py keeps it equal to what the
app serves). The app under test has a database of its own, so that the jobs,
uploads and tokens the fuzzer makes never show up in other tests' listings, and
the gpu queue as its default queue, which no worker in the tests reads, so that
nothing it submits is trained. Its job limits are the documented defaults: the
document states them, so a tighter server would refuse what the document calls
valid. Uploads are capped small. Each operation and each stateful scenario acts
as a new user, so that per-owner quotas and rate limits start afresh, and a
scenario that revokes its own token (GET /v1/me names it) spoils only itself.

Every failure is a bug: a 5xx, a status code, header, content type or body the
document does not describe, an accepted request the document calls invalid, an
ignored credential, a deleted resource still served or a created one missing.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings, strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, ensure_resource_availability, ignored_auth,
                                               negative_data_rejection, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance,
                                               use_after_free)

from core.db import make_engine
from core.migrate import upgrade
from core.tokens import USER, TokenStore

ROOT = Path(__file__).resolve().parents[2]
READ_STREAM_S = 0.5  # how long a call reads an event stream (a queued job's never ends)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth, use_after_free,
          ensure_resource_availability]
OWNERS = itertools.count()
EXAMPLES_PER_OPERATION = 15
STATEFUL_SCENARIOS = 40
STATEFUL_STEPS = 10
FUZZ_SETTINGS = dict(derandomize=True, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                            HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def fuzz_app(settings, tmp_path_factory):
    from service import create_app

    data_dir = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite:///{data_dir / 'fuzz.db'}"
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    limits = replace(settings.limits, max_upload_bytes=64 * 1024, max_upload_rows=1000, max_upload_features=32)
    fuzz_settings = replace(settings, data_dir=data_dir, database_url=database_url, default_queue="gpu",
                            limits=limits)
    # A stream of a job that never finishes ends when the reader's timeout passes, checked between keep-alives.
    return create_app({"SETTINGS": fuzz_settings, "TESTING": True, "EVENTS_KEEPALIVE_S": 0.1})


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
    schema.app = fuzz_app
    return schema


def new_user(app) -> dict:
    """Call arguments that act as a new user (owner fuzzer-N) with a token of its own."""
    owner = f"fuzzer-{next(OWNERS)}"
    _, token = TokenStore(app.extensions["trainrx"].store.engine).create(owner, USER, label="fuzz")
    return {"headers": {"Authorization": f"Bearer {token}"}, "timeout": READ_STREAM_S}


def _operations() -> list:
    paths = yaml.safe_load((ROOT / "openapi.yaml").read_text())["paths"]
    return [pytest.param(method.upper(), path, id=f"{method.upper()} {path}")
            for path, item in paths.items() for method in item if method != "parameters"]


# schemathesis' own pytest integration (schema.parametrize, from_fixture) does not run under pytest 9:
# one plain parametrized test per operation, with the cases drawn by Hypothesis, does the same.
@pytest.mark.parametrize("method,path", _operations())
def test_every_operation_answers_as_documented(fuzz_app, fuzz_schema, method, path):
    operation = fuzz_schema[path][method]
    call = new_user(fuzz_app)
    cases = st.one_of(operation.as_strategy(generation_mode=mode) for mode in GenerationMode)

    @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, **FUZZ_SETTINGS)
    @given(case=cases)
    def check(case):
        case.call_and_validate(checks=CHECKS, **call)

    check()


def test_stateful_links(fuzz_app, fuzz_schema):
    """Scenarios that follow the document's links: a created job, upload or token, then what takes its id."""
    scenarios, answered = [], collections.Counter()

    class Workflow(fuzz_schema.as_state_machine()):
        def setup(self):
            self.call_kwargs = new_user(fuzz_app)
            super().setup()

        def get_call_kwargs(self, case):
            return self.call_kwargs

        def after_call(self, response, case):
            answered[case.operation.label, response.status_code // 100] += 1

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, headers=kwargs["headers"], transport_kwargs=kwargs)

        def teardown(self):
            scenarios.append(1)
            super().teardown()

    run_settings = hypothesis_settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS,
                                       phases=[Phase.generate], **FUZZ_SETTINGS)
    for _ in range(5):
        try:
            Workflow.run(settings=run_settings)
        except FlakyStrategyDefinition:
            # The fuzzer steers by the responses it has seen, and the database outlives a scenario, so a
            # replayed prefix may draw differently; schemathesis' own runner starts again here too.
            pass
        if len(scenarios) >= STATEFUL_SCENARIOS:
            break
    # The links took the fuzzer to operations that only a real id reaches (a random id is a 404).
    reached = {label for (label, family), count in answered.items() if family == 2 and "{job_id}" in label}
    assert len(reached) >= 3, sorted(answered.items())
