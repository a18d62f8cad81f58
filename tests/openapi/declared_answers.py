"""Holds the services' success answers to what the gateway's merged /openapi.json declares for them
(shared/response_models.py): an httpx response hook that validates every 2xx JSON answer a test client
receives against its operation's declared schema, and remembers which operations it saw.

The check is stricter than the document: an object that the document leaves open to more fields
(`additionalProperties` unset, as pydantic writes it) is closed here, so an answer with a field the
declaration lacks fails as surely as one missing a declared field or holding a value of another type.
Objects declared open on purpose (`dict[str, Any]`) stay open.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:labelhive:openapi"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the template, as /openapi.json spells it
    service: str
    pattern: re.Pattern[str]
    validator: Draft202012Validator

    @property
    def parameters(self) -> int:
        return self.path.count("{")


def closed(schema: Any) -> Any:
    """`schema` with every object that lists its properties and says nothing of others closed to others."""
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [closed(value) for value in schema]
    return schema


def _pointer(*parts: str) -> str:
    return "".join("/" + quote(part.replace("~", "~0").replace("/", "~1"), safe="") for part in parts)


def _template(path: str) -> re.Pattern[str]:
    """What request paths `path` (with its `{parameters}`) matches."""
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts) + "$")


def _service(operation: dict[str, Any]) -> str:
    """The service that serves an operation: gateway.docs.merge tags it `<service>: <tag>`."""
    tags = operation.get("tags") or ["gateway"]
    return str(tags[0]).split(":", 1)[0]


class DeclaredAnswers:
    """The JSON success answers `spec` declares for the operations of `services`, and a hook that checks them."""

    def __init__(self, spec: dict[str, Any], services: tuple[str, ...]) -> None:
        self.spec = closed(copy.deepcopy(spec))
        registry: Registry = Registry().with_resource(
            SPEC_URI, Resource.from_contents(self.spec, default_specification=DRAFT202012)
        )
        self.operations: list[Operation] = []
        self.undeclared: list[str] = []
        for path, methods in self.spec["paths"].items():
            for method, operation in methods.items():
                if not isinstance(operation, dict) or _service(operation) not in services:
                    continue
                content = operation["responses"].get("200", {}).get("content", {})
                if "application/json" not in content:
                    continue  # a file (zip, CSV)
                if not content["application/json"].get("schema"):
                    self.undeclared.append(f"{method.upper()} {path}")
                    continue
                reference = _pointer("paths", path, method, "responses", "200", "content", "application/json", "schema")
                self.operations.append(
                    Operation(
                        method.upper(),
                        path,
                        _service(operation),
                        _template(path),
                        Draft202012Validator({"$ref": f"{SPEC_URI}#{reference}"}, registry=registry),
                    )
                )
        # A literal segment wins over a parameter (/task/taginfo/1 is not /task/{task_id}/{q_id}).
        self.operations.sort(key=lambda op: op.parameters)
        self.seen: set[tuple[str, str]] = set()

    def operation(self, method: str, path: str) -> Operation | None:
        return next((op for op in self.operations if op.method == method and op.pattern.match(path)), None)

    def check(self, method: str, path: str, body: Any) -> None:
        """Raises AssertionError when `body`, a success answer to `method path`, is not what it declares."""
        operation = self.operation(method, path)
        if operation is None:
            return
        problems = [
            f"{'/'.join(map(str, error.absolute_path)) or '(the answer)'}: {error.message}"
            for error in operation.validator.iter_errors(body)
        ]
        assert not problems, f"{method} {path} answered what {operation.path} does not declare: {problems[:5]}"
        self.seen.add((operation.method, operation.path))

    async def hook(self, response: httpx.Response) -> None:
        """An httpx response hook: every 2xx JSON answer is checked."""
        if response.is_success and response.headers.get("content-type", "").startswith("application/json"):
            await response.aread()
            self.check(response.request.method, response.request.url.path, response.json())

    def watch(self, client: httpx.AsyncClient) -> httpx.AsyncClient:
        hooks = client.event_hooks
        hooks["response"] = [*hooks.get("response", []), self.hook]
        client.event_hooks = hooks
        return client

    def unseen(self) -> list[str]:
        return sorted(f"{op.method} {op.path}" for op in self.operations if (op.method, op.path) not in self.seen)
