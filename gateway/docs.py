"""One OpenAPI document for the whole platform, merged from every service's, and Swagger UI served
from local assets (no CDN), so /docs works offline.

The assets are swagger-ui-dist 5.x, vendored in `gateway/swagger_ui/` with its licence (see VERSION
there): the newest swagger-ui-bundle on PyPI ships 4.15, which cannot render an OpenAPI 3.1 document."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

from gateway.ratelimit import limited_route
from shared.http import Replicas

CACHE_SECONDS = 30
FETCH_TIMEOUT_SECONDS = 10
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
    """The merged document, remade at most every CACHE_SECONDS. Each service's own comes from one of its
    replicas, taken as the gateway's rotation takes them (shared/http.py Replicas): every replica serves
    the same document, and when one does not answer, the next is asked."""

    def __init__(self, replicas: Mapping[str, Replicas], transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.replicas = replicas
        self._transport = transport
        self._cached: tuple[float, dict[str, Any]] | None = None
        # One remake at a time: the route is anonymous, and callers that arrive while the document is
        # being remade wait for that one instead of each fetching every service's document again.
        self._remaking = asyncio.Lock()

    async def _fetch(self, client: httpx.AsyncClient, replicas: Replicas) -> dict[str, Any] | None:
        """The service's document from the first replica that serves it; None when none does."""
        first = replicas.pick()
        for url in (first, *(url for url in replicas.urls if url != first)):
            try:
                response = await client.get(f"{url}/openapi.json")
                if response.status_code == 200:
                    spec: dict[str, Any] = response.json()
                    return spec
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Out of reach: out of the proxy's rotation too, until its probe answers.
                replicas.take_out(url, type(exc).__name__)
            except (httpx.HTTPError, ValueError):
                pass
        return None

    async def spec(self, own: dict[str, Any]) -> dict[str, Any]:
        if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
            return self._cached[1]
        async with self._remaking:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]  # remade while this caller waited
            return await self._remake(own)

    async def _remake(self, own: dict[str, Any]) -> dict[str, Any]:
        # A loaded service may take seconds to render its document; one that is really down refuses at once.
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, transport=self._transport) as client:
            results = await asyncio.gather(*(self._fetch(client, r) for r in self.replicas.values()))
        fetched = dict(zip(self.replicas, results, strict=True))
        specs = {service: spec for service, spec in fetched.items() if spec}
        merged = merge(specs, own, [service for service, spec in fetched.items() if not spec])
        if len(specs) == len(fetched):  # a document missing a service is answered, not kept for CACHE_SECONDS
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
