"""Streams a request to its service and the answer back: bodies are never held in memory whole, and
never read past the route's limit."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import quote_from_bytes

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shared.contract import dialect_for
from shared.edge import too_large
from shared.errors import PayloadTooLarge, ServiceUnavailable
from shared.identity import IDENTITY_HEADER, INTERNAL_HEADERS
from shared.requestctx import REQUEST_ID_HEADER

log = logging.getLogger(__name__)

# Bodies up to this size (declared by Content-Length) are passed on whole: streaming them costs more
# CPU than it saves memory. Larger or unknown-length bodies stream in both directions.
SMALL_BODY = 256 * 1024

# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "host"})
# Client headers never passed on: hop-by-hop ones, the ones only the gateway may set, and the
# client's own claims about its address and request id (the gateway sets both).
_NOT_FORWARDED = frozenset(name.encode() for name in (*HOP_BY_HOP, *INTERNAL_HEADERS, REQUEST_ID_HEADER.lower(),
                                                      "x-forwarded-for"))
# A header field the upstream's HTTP library accepts (RFC 9110 5.1 and 5.5); one it would refuse
# would fail the whole request, so it is dropped instead.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Safe to send twice: the method says so, or the client's Idempotency-Key does (the services keep
# its first answer).
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Query bytes passed on as they came; anything else (raw non-ASCII) is percent-encoded.
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def _request_headers(request: Request, request_id: str, identity_header: str | None,
                     client_ip: str) -> list[tuple[bytes, bytes]]:
    headers = []
    for name, raw_value in request.scope["headers"]:
        # Optional whitespace around a value is not part of it (RFC 9110 5.5).
        value = raw_value.strip(b" \t")
        if name not in _NOT_FORWARDED and _TOKEN.fullmatch(name) and not _CONTROL.search(value):
            headers.append((name, value))
    headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
    headers.append((b"x-forwarded-for", client_ip.encode("latin-1")))
    if identity_header:
        headers.append((IDENTITY_HEADER.encode(), identity_header.encode()))
    return headers


def declared_length(headers: httpx.Headers | object) -> int:
    """The Content-Length a message declares; unknown (chunked) counts as large."""
    value = headers.get("content-length")  # type: ignore[attr-defined]
    if value is None:
        return 0 if headers.get("transfer-encoding") is None else SMALL_BODY + 1  # type: ignore[attr-defined]
    try:
        return int(value)
    except ValueError:
        return SMALL_BODY + 1


def _too_large(request: Request, limit: int) -> PayloadTooLarge:
    return too_large(limit, dialect_for(request.method, request.url.path))


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit`."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(request, limit)
    return bytes(body)


class _BodyStream:
    """The request body as it streams to the service, stopped (413) as soon as it passes `limit`."""

    def __init__(self, request: Request, limit: int) -> None:
        self._request = request
        self._limit = limit
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        size = 0
        async for chunk in self._request.stream():
            size += len(chunk)
            if size > self._limit:
                raise _too_large(self._request, self._limit)
            yield chunk


def _may_retry(request: Request, content: bytes | _BodyStream, exc: httpx.TransportError) -> bool:
    """Whether a request that failed in transport may go once more, on a fresh connection.

    A service that closes a keep-alive connection (as uvicorn does after a 500) races the gateway's
    next request on it, which then fails without an answer. Nothing was sent when the connection
    could not even be made; otherwise the request may have been read, so only a request that is safe
    to repeat goes again. A body already streamed cannot be sent twice.
    """
    if isinstance(content, _BodyStream) and content.started:
        return False
    if isinstance(exc, httpx.ConnectError):
        return True
    repeatable = request.method in _IDEMPOTENT_METHODS or "idempotency-key" in request.headers
    return repeatable and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError)


async def _send(client: httpx.AsyncClient, request: Request, service: str, url: httpx.URL,
                headers: list[tuple[bytes, bytes]], content: bytes | _BodyStream) -> httpx.Response:
    retried = False
    while True:
        try:
            return await client.send(client.build_request(request.method, url, headers=headers, content=content),
                                     stream=True)
        except httpx.TimeoutException as exc:
            raise ServiceUnavailable(f"{service} service timed out", details=type(exc).__name__) from exc
        except httpx.TransportError as exc:
            if retried or not _may_retry(request, content, exc):
                raise ServiceUnavailable(f"{service} service unavailable", details=type(exc).__name__) from exc
            retried = True
            log.info("retrying %s on %s on a fresh connection after %s", request.method, service, type(exc).__name__)


async def forward(
    client: httpx.AsyncClient,
    request: Request,
    service: str,
    *,
    request_id: str,
    identity_header: str | None,
    client_ip: str,
    body_limit: int,
    body: bytes | None = None,
) -> Response:
    content: bytes | _BodyStream
    if body is not None:
        content = body
    elif declared_length(request.headers) <= SMALL_BODY:
        content = await read_body(request, body_limit)
    else:
        content = _BodyStream(request, body_limit)
    # The path as the client sent it (the gateway only routes plain paths, gateway/routing.py), so
    # the service decodes exactly what the gateway routed.
    query: bytes = request.scope["query_string"]
    if not query.isascii():
        query = quote_from_bytes(query, safe=_QUERY_SAFE).encode()
    url = httpx.URL(path=request.scope["raw_path"].decode("ascii"), query=query or None)
    headers = _request_headers(request, request_id, identity_header, client_ip)
    upstream = await _send(client, request, service, url, headers, content)
    answer_headers = [(k.lower(), v) for k, v in upstream.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
    response: Response
    if declared_length(upstream.headers) <= SMALL_BODY:
        try:
            raw = b"".join([chunk async for chunk in upstream.aiter_raw()])
        except httpx.TransportError as exc:  # the service went away in the middle of its answer
            raise ServiceUnavailable(f"{service} service unavailable", details=type(exc).__name__) from exc
        finally:
            await upstream.aclose()
        response = Response(raw, status_code=upstream.status_code)
    else:
        response = StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                                     background=BackgroundTask(upstream.aclose))
    response.raw_headers = answer_headers
    return response
