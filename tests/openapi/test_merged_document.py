"""The gateway's merged /openapi.json (gateway/docs.py merge): each service's components keep their own
names and titles apart, so a client generator that names classes after titles makes one per model."""

from __future__ import annotations

from gateway.docs import merge

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
