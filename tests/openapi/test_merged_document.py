"""The gateway's merged /openapi.json (gateway/docs.py): each service's components keep their own names
and titles apart, so a client generator that names classes after titles makes one per model; and a
service's document comes from another replica when one is down (services on httpx.MockTransport)."""

from __future__ import annotations

import httpx

from gateway.docs import MergedOpenAPI, merge
from shared.http import Replicas

GATEWAY = {"openapi": "3.1.0", "info": {"title": "gateway", "version": "1"}, "paths": {}}


def _document(service: str) -> dict:
    empty = {"title": "Empty", "type": "object", "properties": {}}
    answer = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Empty"}}}}
    return {
        "openapi": "3.1.0",
        "paths": {f"/{service}/ping": {"get": {"tags": ["ping"], "responses": {"200": answer}}}},
        "components": {"schemas": {"Empty": empty}},
    }


def test_two_services_models_of_one_name_are_titled_apart() -> None:
    merged = merge({"auth": _document("auth"), "tasks": _document("tasks")}, GATEWAY, [])
    schemas = merged["components"]["schemas"]
    assert {name: schema["title"] for name, schema in schemas.items()} == {
        "auth.Empty": "auth.Empty",
        "tasks.Empty": "tasks.Empty",
    }
    answer = merged["paths"]["/tasks/ping"]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"] == {"$ref": "#/components/schemas/tasks.Empty"}
    assert merged["paths"]["/auth/ping"]["get"]["tags"] == ["auth: ping"]


async def _never_ready(url: str) -> bool:
    return False


async def test_a_replica_that_is_down_is_passed_over() -> None:
    """auth's first replica refuses connections and its second answers 500: its third serves the document;
    every replica of tasks is down, so tasks is named missing."""
    urls = {"auth": ["http://auth-1", "http://auth-2", "http://auth-3"], "tasks": ["http://tasks-1", "http://tasks-2"]}
    replicas = {
        service: Replicas(service, addresses, _never_ready, probe_interval=60) for service, addresses in urls.items()
    }
    asked: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host in ("auth-1", "tasks-1", "tasks-2"):
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.host == "auth-2":
            return httpx.Response(500, text="starting")
        return httpx.Response(200, json=_document("auth"))

    try:
        merged = await MergedOpenAPI(replicas, httpx.MockTransport(serve)).spec(GATEWAY)
        assert "/auth/ping" in merged["paths"] and "/tasks/ping" not in merged["paths"]
        assert merged["info"]["description"].endswith("Missing services: tasks"), merged["info"]["description"]
        assert sorted(asked) == ["auth-1", "auth-2", "auth-3", "tasks-1", "tasks-2"]
        # The replicas that refused are out of the gateway's rotation too; the one that answered 500 is not.
        assert replicas["auth"].out == {"http://auth-1"}
        assert replicas["tasks"].out == {"http://tasks-1", "http://tasks-2"}
    finally:
        for each in replicas.values():
            await each.aclose()
