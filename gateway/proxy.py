"""Streams a request to its service and the answer back: bodies are never held in memory whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shared.errors import ServiceUnavailable
from shared.identity import IDENTITY_HEADER, INTERNAL_HEADERS
from shared.requestctx import REQUEST_ID_HEADER

# Bodies up to this size (declared by Content-Length) are passed on whole: streaming them costs more
# CPU than it saves memory. Larger or unknown-length bodies stream in both directions.
SMALL_BODY = 256 * 1024

# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "host"})


def _request_headers(request: Request, request_id: str, identity_header: str | None,
                     client_ip: str) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in request.headers.items()
               if k not in HOP_BY_HOP and k not in INTERNAL_HEADERS and k != REQUEST_ID_HEADER.lower()]
    headers.append((REQUEST_ID_HEADER, request_id))
    headers.append(("X-Forwarded-For", client_ip))
    if identity_header:
        headers.append((IDENTITY_HEADER, identity_header))
    return headers


async def forward(
    client: httpx.AsyncClient,
    request: Request,
    service: str,
    *,
    request_id: str,
    identity_header: str | None,
    client_ip: str,
    body: bytes | None = None,
) -> Response:
    content: bytes | AsyncIterator[bytes]
    if body is not None:
        content = body
    elif _declared_length(request.headers) <= SMALL_BODY:
        content = await request.body()
    else:
        content = request.stream()
    upstream_request = client.build_request(
        request.method,
        httpx.URL(path=request.url.path, query=request.url.query.encode()),
        headers=_request_headers(request, request_id, identity_header, client_ip),
        content=content,
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.TimeoutException as exc:
        raise ServiceUnavailable(f"{service} service timed out", details=type(exc).__name__) from exc
    except httpx.TransportError as exc:
        raise ServiceUnavailable(f"{service} service unavailable", details=type(exc).__name__) from exc
    headers = [(k.lower(), v) for k, v in upstream.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
    response: Response
    if _declared_length(upstream.headers) <= SMALL_BODY:
        try:
            raw = b"".join([chunk async for chunk in upstream.aiter_raw()])
        finally:
            await upstream.aclose()
        response = Response(raw, status_code=upstream.status_code)
    else:
        response = StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                                     background=BackgroundTask(upstream.aclose))
    response.raw_headers = headers
    return response


def _declared_length(headers: httpx.Headers | object) -> int:
    """The Content-Length a message declares; unknown (chunked) counts as large."""
    value = headers.get("content-length")  # type: ignore[attr-defined]
    if value is None:
        return 0 if headers.get("transfer-encoding") is None else SMALL_BODY + 1  # type: ignore[attr-defined]
    try:
        return int(value)
    except ValueError:
        return SMALL_BODY + 1
