"""What a service's OpenAPI schema declares beyond FastAPI's own: the bodies its routes read by hand,
and the error answers its routes really give. (Success answers each route declares itself, with
`response_model=` and the envelopes of shared/response_models.py.)

Bodies. A route that checks the caller's role before it reads its body (CONTRACT.md: authorization
before validation) declares no body parameter, since FastAPI would validate one before any dependency
ran; it reads the body with shared.edge.read_json_body(request, Model) and declares it with
`openapi_extra=json_body(Model)`, from the very model it validates with, so the two cannot drift (a
multipart form: `form_body`). The models' definitions travel in the operation and are moved into
`components/schemas` when the schema is built, where every `$ref` points.

Errors. FastAPI declares a 422 for every route with parameters, yet a validation error here is a 400 in the
route's own envelope (service_app.install_error_handlers). This replaces the 422 with that 400 and
adds, by rule, what the shared code answers on every route:

- 400 (bad input; 003's "no permission" too) everywhere;
- 401 (not logged in) and 403 (no permission, CSRF) on routes that read the caller's identity;
- 404 on routes with path parameters (an id that names nothing);
- 413 on routes that take a body (shared/body_limits.py).

The error bodies are described once per document (components `Error000` ... `Error004`), and
operations that share an id (one function serving GET and POST) get one id per method.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.contract import Dialect, dialect_for
from shared.identity import optional_identity, required_identity

COMPONENT_REF = "#/components/schemas/{model}"
_TEXT = {"type": "string"}
ERROR_SCHEMAS: dict[Dialect, tuple[str, dict[str, Any]]] = {
    Dialect.DATASET_000: (
        "Error000",
        {
            "type": "object",
            "required": ["err_no", "err_desc", "time_used"],
            "properties": {
                "err_no": _TEXT,
                "err_desc": _TEXT,
                "request_id": _TEXT,
                "requestID": _TEXT,
                "time_used": {"type": "integer"},
            },
        },
    ),
    Dialect.EXPERT_001: ("Error001", {"type": "object", "required": ["response"], "properties": {"response": _TEXT}}),
    Dialect.FACE_002: (
        "Error002",
        {
            "type": "object",
            "required": ["err_code", "err_msg"],
            "properties": {"err_code": {"type": "integer"}, "err_msg": _TEXT},
        },
    ),
    Dialect.CROWD_003: (
        "Error003",
        {
            "type": "object",
            "required": ["code", "message", "data"],
            "properties": {"code": {"type": "integer"}, "message": _TEXT, "data": {}},
        },
    ),
    Dialect.DETECT_004: (
        "Error004",
        {"type": "object", "required": ["error", "details"], "properties": {"error": _TEXT, "details": {}}},
    ),
}
_DESCRIPTIONS = {
    "400": "Invalid input (and, in document 003, no permission)",
    "401": "Not logged in: no session or API key, or one that does not open this route",
    "403": "No permission, or a cross-site write without its CSRF token",
    "404": "Nothing by that id or name",
    "413": "Request body larger than this route accepts",
}
_BODY_METHODS = frozenset({"post", "put", "patch"})
_IDENTITY_DEPENDENCIES = (required_identity, optional_identity)


def json_body(*models: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring the JSON body a route reads by hand: `model`, or any one of `models` where
    the body's fields tell which one the client speaks (`POST /user/register`: 001's or 003's)."""
    references, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=COMPONENT_REF
    )
    schema: dict[str, Any] = (
        dict(references[(models[0], "validation")])
        if len(models) == 1
        else {"anyOf": [references[(model, "validation")] for model in models]}
    )
    schema["$defs"] = definitions.get("$defs", {})  # moved into components by _place_definitions
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def form_body(fields: dict[str, tuple[str, str]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """`openapi_extra` declaring a multipart form a route parses itself: {name: (kind, description)},
    kind = text | file | files."""
    properties: dict[str, Any] = {}
    for name, (kind, description) in fields.items():
        if kind == "text":
            properties[name] = {"type": "string", "description": description}
        elif kind == "file":
            properties[name] = {"type": "string", "format": "binary", "description": description}
        else:
            properties[name] = {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": description,
            }
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _place_definitions(schema: dict[str, Any]) -> None:
    """Moves the `$defs` that `json_body` left in operations into `components/schemas`, where its
    references point (a `$ref` in an OpenAPI document resolves from the document's root)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})

    def hoist(node: Any) -> None:
        if isinstance(node, dict):
            for name, definition in node.pop("$defs", {}).items():
                if components.setdefault(name, definition) != definition:
                    raise ValueError(f"two different schemas named {name!r} in one service's OpenAPI document")
            for value in node.values():
                hoist(value)
        elif isinstance(node, list):
            for value in node:
                hoist(value)

    hoist(schema.get("paths", {}))


def errors_in(status: int, *dialects: Dialect) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route whose `status` answers come in more than one document's envelope
    (`POST /user/register` answers a 001 body in 001's): declare_errors keeps what a route declares."""
    references = [{"$ref": COMPONENT_REF.format(model=ERROR_SCHEMAS[dialect][0])} for dialect in dialects]
    return {
        status: {
            "description": _DESCRIPTIONS[str(status)],
            "content": {"application/json": {"schema": {"anyOf": references}}},
        }
    }


def _reads_identity(dependant: Any) -> bool:
    return any(sub.call in _IDENTITY_DEPENDENCIES or _reads_identity(sub) for sub in dependant.dependencies)


def _identity_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(path, method) of every operation whose dependencies read the caller's identity."""
    operations: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        path, methods = context.path_format, context.methods  # both set for an APIRoute
        if isinstance(context.original_route, APIRoute) and path and methods and _reads_identity(context.dependant):
            operations.update((path, method.lower()) for method in methods)
    return operations


def declare_errors(schema: dict[str, Any], identity_operations: set[tuple[str, str]]) -> None:
    """Rewrites `schema` (a service's OpenAPI document) in place; see the module docstring."""
    used: set[Dialect] = set()
    operation_ids: dict[str, int] = {}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            dialect = dialect_for(method, path)
            used.add(dialect)
            statuses = ["400"]
            if (path, method) in identity_operations:
                statuses += ["401", "403"]
            if "{" in path:
                statuses.append("404")
            if method in _BODY_METHODS or "requestBody" in operation:
                statuses.append("413")
            responses = operation["responses"]
            responses.pop("422", None)
            reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMAS[dialect][0]}"}
            for status in statuses:
                responses.setdefault(
                    status,
                    {"description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": reference}}},
                )
            if (operation_id := operation.get("operationId")) is not None:
                operation_ids[operation_id] = operation_ids.get(operation_id, 0) + 1
                if operation_ids[operation_id] > 1:
                    operation["operationId"] = f"{operation_id}_{method}"
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "#/components/schemas/HTTPValidationError" not in json.dumps(schema):  # only the 422s used them
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
    text = json.dumps(schema)
    for dialect, (name, error_schema) in ERROR_SCHEMAS.items():
        if dialect in used or COMPONENT_REF.format(model=name) in text:  # errors_in may name other envelopes
            components[name] = error_schema


def install_declared_schema(app: FastAPI) -> None:
    """Makes `app.openapi()` return the schema with its hand-read bodies' definitions in components and
    its real error answers (built once, cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with warnings.catch_warnings():  # the duplicate operation ids it warns of are renamed below
                warnings.filterwarnings("ignore", "Duplicate Operation ID")
                generated = generate()  # cached by FastAPI in app.openapi_schema, and rewritten there
            _place_definitions(generated)
            declare_errors(generated, _identity_operations(app))
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
