"""The bodies routes read by hand (to check the caller's role first) are declared in the gateway's
merged /openapi.json from the models the routes validate with (shared/openapi.py `json_body`), every
`$ref` in that document resolves, and what a schema declares required the route really requires."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import gateway_client, unique
from tests.helpers import user_client

# (method, path, who calls it, the envelope field that carries the message)
HAND_READ_BODIES = [
    ("post", "/user/register", "anonymous", "message"),
    ("post", "/dataset/upload", "demand", "response"),
    ("post", "/task/assign", "demand", "response"),
    ("put", "/task/reassign", "demand", "response"),
    ("post", "/task/urgent", "demand", "response"),
    ("put", "/data/label", "tag", "response"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def spec(platform) -> dict[str, Any]:
    async with gateway_client(platform) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def callers(platform, mailbox) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {"anonymous": gateway_client(platform)}
    for role in ("demand", "tag"):
        clients[role], _ = await user_client(platform, mailbox, role)
    yield clients
    for client in clients.values():
        await client.aclose()


def _resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), f"{reference} does not point into the document"
    node: Any = document
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{reference} does not resolve"
        node = node[part]
    return node


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _json_body_schema(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation = spec["paths"][path][method]
    assert "requestBody" in operation, f"{method.upper()} {path} declares no request body"
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return _resolve(spec, schema["$ref"]) if "$ref" in schema else schema


def test_every_reference_in_the_merged_document_resolves(spec):
    references = set(_references(spec))
    assert references, "the document uses no $ref at all"
    for reference in references:
        _resolve(spec, reference)
    assert "$defs" not in str(spec["paths"]), "model definitions left inside an operation"


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _, _ in HAND_READ_BODIES])
def test_hand_read_bodies_are_declared(spec, method, path):
    schema = _json_body_schema(spec, method, path)
    if path == "/user/register":  # 003's body or 001's: the fields tell which
        variants = [_resolve(spec, variant["$ref"]) for variant in schema["anyOf"]]
        assert [sorted(v["required"]) for v in variants] == [
            ["email", "password", "user_name", "user_type", "verifycode"],
            ["password", "username"],
        ]
        # ... and each is answered in its document's envelope: both are declared.
        answers = spec["paths"][path][method]["responses"]["400"]["content"]["application/json"]["schema"]
        assert [sorted(_resolve(spec, a["$ref"])["required"]) for a in answers["anyOf"]] == [
            ["code", "data", "message"],
            ["response"],
        ]
        return
    assert schema["type"] == "object" and schema["required"] and schema["properties"], schema


@pytest.mark.parametrize(("method", "path", "caller", "field"), HAND_READ_BODIES)
async def test_what_a_schema_requires_the_route_requires(spec, callers, method, path, caller, field):
    schema = _json_body_schema(spec, method, path)
    required = _resolve(spec, schema["anyOf"][0]["$ref"])["required"] if "anyOf" in schema else schema["required"]
    response = await callers[caller].request(method.upper(), path, json={})
    assert response.status_code == 400, response.text
    message = response.json()[field]
    assert all(name in message for name in required), (required, message)


async def test_a_declared_type_is_the_one_enforced(callers):
    manager = callers["demand"]
    body = {"dataset_id": 1, "area": "law", "expert_id_list": [1], "notice": 5}
    response = await manager.post("/task/assign", json=body)
    assert response.status_code == 400 and response.json()["response"].startswith("参数错误: notice"), response.text
    response = await manager.post("/task/assign", json={**body, "notice": "ok", "expert_id_list": "[1, true]"})
    assert response.status_code == 400 and "expert_id_list" in response.json()["response"], response.text
    response = await callers["tag"].put("/data/label", json={"data_id": "7", "data_answer": [], "data_reserve": 2})
    assert (response.status_code, response.json()) == (400, {"response": "参数错误: data_reserve: 必须是0或1"})


async def test_001s_validation_errors_are_in_its_clients_language(client):
    response = await client.post("/user/register", json={"username": unique("exp"), "password": 123456})
    assert response.status_code == 400 and set(response.json()) == {"response"}, response.text
    assert response.json()["response"].startswith("参数错误: password"), response.text
    response = await client.get("/user/login", params={"username": "u" * 65, "password": "secret-1"})
    assert response.status_code == 400 and response.json()["response"].startswith("参数错误: username"), response.text
