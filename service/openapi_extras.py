"""What the OpenAPI document says about many operations at once, written once here
rather than on every view.

- Every ``/v1`` operation can answer 401 (no credential, or a bad one), 429 (the
  per-owner rate limit) and 503 (the database is busy or away; retry); every
  operation that takes an id can answer 404 (no such resource, or another owner's).
  Each error response carries the standard body.
- A schema says what its validators check, where apispec leaves it out: exclusive
  bounds, a nullable nested object that is null or that object (not any object), and
  rules across fields, which a schema states in ``Meta.openapi`` (core/spec.py).
- The operations that create a resource link to the operations that take its id
  (OpenAPI links), so a client generator, or schemathesis' stateful phase, can
  follow a created job, upload or token instead of guessing ids.

``OpenApiExtras`` is an apispec plugin: it sees each operation as a blueprint
registers it, and ``add_links`` runs once every blueprint is registered, because a
link needs its target to exist.
"""

from __future__ import annotations

import copy
from typing import Any

from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow.common import resolve_schema_instance
from marshmallow import fields, validate

PROTECTED_PREFIX = "/v1/"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

# Not flask-smorest's names (UNAUTHORIZED, ...): it registers those itself, without the headers.
UNAUTHORIZED, NOT_FOUND, TOO_MANY_REQUESTS = "AUTHENTICATION_REQUIRED", "NO_SUCH_RESOURCE", "RATE_LIMITED"
UNAVAILABLE = "TRY_AGAIN_LATER"
RESPONSES = {
    UNAUTHORIZED: {
        "description": "No credential, or a wrong, revoked or expired one.",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`, with `error=\"invalid_token\"` when a token "
                                                        "was sent but is not valid.",
                                         "required": True, "schema": {"type": "string"}}},
        "content": ERROR_CONTENT,
    },
    NOT_FOUND: {
        "description": "No such resource: it never existed, was deleted, or belongs to another owner.",
        "content": ERROR_CONTENT,
    },
    TOO_MANY_REQUESTS: {
        "description": "Over the caller's rate limit or quota; retry after `Retry-After` seconds.",
        "headers": {"Retry-After": {"description": "Seconds to wait before retrying.", "required": True,
                                    "schema": {"type": "integer", "minimum": 0}}},
        "content": ERROR_CONTENT,
    },
    UNAVAILABLE: {
        "description": "A part this API depends on is busy or away (the database is locked, the queue is "
                       "unreachable); nothing was changed. Retry after `Retry-After` seconds when it is sent.",
        "headers": {"Retry-After": {"description": "Seconds to wait before retrying.",
                                    "schema": {"type": "integer", "minimum": 0}}},
        "content": ERROR_CONTENT,
    },
}


class OpenApiExtras(BasePlugin):
    def __init__(self) -> None:
        self.operations: dict[tuple[str, str], dict] = {}

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec
        for name, response in RESPONSES.items():
            spec.components.response(name, copy.deepcopy(response))

    def schema_helper(self, name: str, definition: dict, schema: Any = None, **kwargs: Any) -> None:
        if schema is None:
            return
        instance = resolve_schema_instance(schema)
        properties = definition.get("properties", {})
        for field_name, field in instance.fields.items():
            prop = properties.get(field.data_key or field_name)
            if prop is None:
                continue
            _exclusive_bounds(field, prop)
            if isinstance(field, fields.List) and "items" in prop:
                _exclusive_bounds(field.inner, prop["items"])
            for branch in prop.get("anyOf", []):
                if branch == {"type": "object", "nullable": True}:  # apispec's "null", which lets any object in
                    branch["enum"] = [None]
        meta = getattr(instance, "Meta", None)
        definition.update(copy.deepcopy(getattr(meta, "openapi", {})))
        for field_name, target in getattr(meta, "openapi_merge_patches", {}).items():
            properties[field_name].update(self._merge_patch_of(target))

    def _merge_patch_of(self, name: str) -> dict:
        """The keys a JSON merge patch (RFC 7396) of the schema ``name`` may carry, with their values: a
        field's own schema, or null to remove it (its default then applies; not for required fields); an
        object for a nested object, merged into it."""
        target = self.spec.components.schemas[name]
        required = set(target.get("required", []))
        properties = {}
        for key, prop in target["properties"].items():
            if not {"$ref", "allOf", "anyOf"}.isdisjoint(prop):
                patch = {"type": "object"}
            else:
                patch = {k: copy.deepcopy(v) for k, v in prop.items() if k != "default"}
            if key not in required:
                patch["nullable"] = True
            properties[key] = patch
        return {"properties": properties, "additionalProperties": False}

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                # An alt_response given only a description still sends the standard error body.
                if str(code)[0] in "45" and isinstance(response, dict) and not {"content", "$ref"} & set(response):
                    response["content"] = copy.deepcopy(ERROR_CONTENT)
            if path.startswith(PROTECTED_PREFIX):
                _add_response(responses, 401, UNAUTHORIZED)
                _add_response(responses, 429, TOO_MANY_REQUESTS)
                _add_response(responses, 503, UNAVAILABLE)
                if "{" in path:
                    _add_response(responses, 404, NOT_FOUND)
            self.operations[(path, method)] = operation

    def add_links(self) -> None:
        """Link each creating operation to the operations that take what it created."""
        job_id = {"job_id": "$response.body#/id"}
        job_ops = self._operations_under("/v1/jobs/{job_id}")
        for source in (("/v1/jobs", "post", (202, 200)), ("/v1/jobs/{job_id}/resubmit", "post", (202, 200)),
                       ("/v1/jobs/{job_id}/cancel", "post", (202,))):  # the cancelled job: now it can be deleted
            self._link(*source, {_link_name(*t): {"operationRef": _ref(*t), "parameters": job_id} for t in job_ops})
        dataset_links = {_link_name(*t): {"operationRef": _ref(*t), "parameters": {"dataset_id": "$response.body#/id"}}
                         for t in self._operations_under("/v1/datasets/{dataset_id}")}
        dataset_links["TrainOnIt"] = {
            "operationRef": _ref("/v1/jobs", "post"),
            "description": "Train a small network on the uploaded dataset.",
            "requestBody": {"dataset": {"id": "$response.body#/id"}, "architecture": {"hidden_layers": [16]},
                            "epochs": 1},
            "x-schemathesis": {"merge_body": False},  # the whole body: a generated one may name a built-in
        }
        self._link("/v1/datasets", "post", (201,), dataset_links)
        self._link("/v1/tokens", "post", (201,), {
            _link_name(*t): {"operationRef": _ref(*t), "parameters": {"token_id": "$response.body#/id"}}
            for t in self._operations_under("/v1/tokens/{token_id}")})

    def _operations_under(self, prefix: str) -> list[tuple[str, str]]:
        return [(path, method) for path, method in self.operations
                if path == prefix or path.startswith(prefix + "/")]

    def _link(self, path: str, method: str, codes: tuple[int, ...], links: dict) -> None:
        responses = self.operations[(path, method)]["responses"]
        for code in codes:
            response = responses.get(str(code), responses.get(code))
            if response is not None and links:
                response.setdefault("links", {}).update({name: copy.deepcopy(link) for name, link in links.items()})


def _add_response(responses: dict, code: int, name: str) -> None:
    if code not in responses and str(code) not in responses:
        responses[code] = name  # apispec turns the name into a $ref to the component


def _exclusive_bounds(field: fields.Field, prop: dict) -> None:
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and not validator.min_inclusive:
                prop["exclusiveMinimum"] = True
            if validator.max is not None and not validator.max_inclusive:
                prop["exclusiveMaximum"] = True


def _ref(path: str, method: str) -> str:
    """A JSON pointer to an operation of this document (``~1`` escapes ``/``)."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _link_name(path: str, method: str) -> str:
    """``GET /v1/jobs/{job_id}/model.onnx`` -> ``GetModelOnnx``; the id operations themselves -> ``Get``/``Delete``."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    words = [] if last.startswith("{") else last.replace(".", "_").split("_")
    return method.capitalize() + "".join(w.capitalize() for w in words)
