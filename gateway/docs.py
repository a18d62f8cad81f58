"""One OpenAPI document for the whole platform, merged from every service's, and Swagger UI served
from local assets (no CDN), so /docs works offline.

The assets are swagger-ui-dist 5.x, vendored in `gateway/swagger_ui/` with its licence (see VERSION
there): the newest swagger-ui-bundle on PyPI ships 4.15, which cannot render an OpenAPI 3.1 document."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

from gateway.ratelimit import limited_route

CACHE_SECONDS = 30
ASSETS = "/docs/assets"
SWAGGER_UI_DIR = Path(__file__).resolve().parent / "swagger_ui"


def _prefixed(spec: dict[str, Any], service: str) -> dict[str, Any]:
    """Prefixes a spec's component names with its service so that two services' `Body` differ, and titles
    each component with its prefixed name: client generators (openapi-python-client) name a class after
    its schema's title, and two services' `Empty` would otherwise be one class, the other dropped."""
    text = json.dumps(spec).replace('"#/components/schemas/', f'"#/components/schemas/{service}.')
    spec = json.loads(text)
    schemas = spec.get("components", {}).get("schemas", {})
    spec.setdefault("components", {})["schemas"] = {
        f"{service}.{name}": {**schema, "title": f"{service}.{name}"} for name, schema in schemas.items()
    }
    return spec


def merge(specs: dict[str, dict[str, Any]], own: dict[str, Any], missing: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "openapi": own.get("openapi", "3.1.0"),
        "info": {
            "title": "Labelhive API",
            "version": own.get("info", {}).get("version", "0.1.0"),
            "description": "Every service's endpoints, served through the gateway. Missing "
            "services: " + (", ".join(sorted(missing)) or "none"),
        },
        "paths": dict(own.get("paths", {})),
        "components": {"schemas": dict(own.get("components", {}).get("schemas", {}))},
    }
    for service, spec in specs.items():
        spec = _prefixed(spec, service)
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                if isinstance(operation, dict):
                    operation["tags"] = [f"{service}: {t}" for t in operation.get("tags", [])] or [service]
                    _declare_gateway_answers(method, path, operation)
            merged["paths"].setdefault(path, {}).update(operations)
        merged["components"]["schemas"].update(spec["components"]["schemas"])
    return merged


def _declare_gateway_answers(method: str, path: str, operation: dict[str, Any]) -> None:
    """What the gateway itself may answer on a proxied operation, in the envelope of the route's 400:
    429 where it rate-limits (gateway/ratelimit.py), 503 when the service is down or slow."""
    responses = operation.setdefault("responses", {})
    content = responses.get("400", {}).get("content")
    answers = {"503": "The service that owns this route is down or too slow"}
    if limited_route(method, path) is not None:
        answers["429"] = "Too many attempts from this address or for this account: wait and retry"
    for status, description in answers.items():
        responses.setdefault(status, {"description": description, **({"content": content} if content else {})})


class MergedOpenAPI:
    def __init__(self, service_urls: dict[str, str]) -> None:
        self.service_urls = service_urls
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def _fetch(self, client: httpx.AsyncClient, service: str, url: str) -> dict[str, Any] | None:
        try:
            response = await client.get(f"{url}/openapi.json")
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    async def spec(self, own: dict[str, Any]) -> dict[str, Any]:
        if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
            return self._cached[1]
        async with httpx.AsyncClient(timeout=3) as client:
            results = await asyncio.gather(*(self._fetch(client, s, u) for s, u in self.service_urls.items()))
        fetched = dict(zip(self.service_urls, results, strict=True))
        specs = {service: spec for service, spec in fetched.items() if spec}
        merged = merge(specs, own, [service for service, spec in fetched.items() if not spec])
        self._cached = (time.monotonic(), merged)
        return merged


def swagger_page() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Labelhive API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )
