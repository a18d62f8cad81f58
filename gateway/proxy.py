"""Streams a request to its service and the answer back: bodies are never held in memory whole, and
never read past the route's limit.

The hop is an aiohttp client (one pool of keep-alive connections for every service): per request
it costs a fraction of what httpx/httpcore did, whose pool checks every idle connection's socket on
each request."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from urllib.parse import quote_from_bytes

import aiohttp
from multidict import CIMultiDict
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from yarl import URL

from shared.contract import dialect_for
from shared.edge import too_large
from shared.errors import PayloadTooLarge, ServiceUnavailable
from shared.http import KEEPALIVE_SECONDS, PooledConnector, Replicas, may_retry, says_stopping
from shared.identity import IDENTITY_HEADER, INTERNAL_HEADERS
from shared.requestctx import REQUEST_ID_HEADER

log = logging.getLogger(__name__)

# Bodies up to this size (declared by Content-Length) are passed on whole: streaming them costs more
# CPU than it saves memory. Larger or unknown-length bodies stream in both directions.
SMALL_BODY = 256 * 1024
MAX_CONNECTIONS = 500

# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
_HOP_BY_HOP_RAW = frozenset(name.encode() for name in HOP_BY_HOP)
# Client headers never passed on: hop-by-hop ones, the ones only the gateway may set, and the
# client's own claims about its address and request id (the gateway sets both).
_NOT_FORWARDED = frozenset(
    name.encode() for name in (*HOP_BY_HOP, *INTERNAL_HEADERS, REQUEST_ID_HEADER.lower(), "x-forwarded-for")
)
# A header field the upstream's HTTP library accepts (RFC 9110 5.1 and 5.5); one it would refuse
# would fail the whole request, so it is dropped instead.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Query bytes passed on as they came; anything else (raw non-ASCII) is percent-encoded.
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
# Headers aiohttp would add on its own: the service sees the client's headers and nothing else.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class Upstreams:
    """Where each service's replicas are (shared/http.py Replicas), and one pool of keep-alive connections
    to all of them."""

    def __init__(self, urls: Mapping[str, Sequence[str]], *, timeout: float, connect_timeout: float) -> None:
        self.replicas = {name: Replicas(name, addresses, self._ready) for name, addresses in urls.items()}
        self._bases = {address: URL(address) for addresses in urls.values() for address in addresses}
        connector = PooledConnector(
            limit=MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS, use_dns_cache=True
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # a proxy keeps no cookies: they are the clients'
            auto_decompress=False,  # bodies pass through as the service encoded them
            skip_auto_headers=_NO_AUTO_HEADERS,
            raise_for_status=False,
        )
        # aiohttp resends GET, PUT and DELETE itself when a pooled connection fails; the platform's
        # rule (shared/http.py may_retry) decides instead. (aiohttp's test client turns it off the same way.)
        self.session._retry_connection = False

    def __contains__(self, service: str) -> bool:
        return service in self.replicas

    def url(self, address: str, raw_path: str, query: str = "") -> URL:
        base = self._bases[address]
        return URL.build(
            scheme=base.scheme,
            host=base.raw_host or "",
            port=base.port,
            path=raw_path,
            query_string=query,
            encoded=True,
        )

    async def readiness(self, address: str) -> tuple[int, dict[str, object]]:
        """A replica's `/readyz` status and the checks it reports."""
        async with self.session.get(self.url(address, "/readyz"), timeout=aiohttp.ClientTimeout(total=3)) as response:
            body = await response.json(content_type=None)
        return response.status, body.get("data", {}).get("checks", {})

    async def _ready(self, address: str) -> bool:
        try:
            return (await self.readiness(address))[0] == 200
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
            return False

    async def aclose(self) -> None:
        for replicas in self.replicas.values():
            await replicas.aclose()
        await self.session.close()


def _request_headers(
    request: Request, request_id: str, identity_header: str | None, client_ip: str
) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, raw_value in request.scope["headers"]:
        # Optional whitespace around a value is not part of it (RFC 9110 5.5).
        value = raw_value.strip(b" \t")
        if name not in _NOT_FORWARDED and _TOKEN.fullmatch(name) and not _CONTROL.search(value):
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
    headers[REQUEST_ID_HEADER] = request_id
    headers["x-forwarded-for"] = client_ip
    if identity_header:
        headers[IDENTITY_HEADER] = identity_header
    return headers


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The Content-Length a message declares: 0 when it has no body, None when its length is unknown
    (chunked, or a Content-Length that is not a number)."""
    value = headers.get("content-length")
    if value is None:
        return 0 if headers.get("transfer-encoding") is None else None
    return int(value) if value.isascii() and value.isdigit() else None


def _small(length: int | None) -> bool:
    return length is not None and length <= SMALL_BODY


def _too_large(request: Request, limit: int) -> PayloadTooLarge:
    return too_large(limit, dialect_for(request.method, request.scope["path"]))


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit`."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(request, limit)
    return bytes(body)


class _BodyStream:
    """The request body as it streams to the service, stopped (413) as soon as it passes `limit`. The
    refusal is kept here: the HTTP client reports it only as a failed send."""

    def __init__(self, request: Request, limit: int) -> None:
        self._request = request
        self._limit = limit
        self.started = False
        self.refused: PayloadTooLarge | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        size = 0
        async for chunk in self._request.stream():
            size += len(chunk)
            if size > self._limit:
                self.refused = _too_large(self._request, self._limit)
                raise self.refused
            yield chunk


def _nothing_sent(exc: aiohttp.ClientError) -> bool:
    """Whether the connection failed before a byte of the request went: the replica is out of reach."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _may_retry(request: Request, content: bytes | None | _BodyStream, exc: aiohttp.ClientError) -> bool:
    """shared/http.py's rule; besides, a body already streamed cannot be sent twice."""
    if isinstance(content, _BodyStream) and content.started:
        return False
    return may_retry(
        request.method,
        idempotency_key="idempotency-key" in request.headers,
        nothing_sent=_nothing_sent(exc),
        timed_out=isinstance(exc, TimeoutError),
    )


async def _send(
    upstreams: Upstreams,
    request: Request,
    service: str,
    path_and_query: tuple[str, str],
    headers: CIMultiDict[str],
    content: bytes | None | _BodyStream,
) -> aiohttp.ClientResponse:
    replicas = upstreams.replicas[service]
    address = replicas.pick()
    retried = False
    while True:
        try:
            response = await upstreams.session.request(
                request.method,
                upstreams.url(address, *path_and_query),
                headers=headers,
                data=content,
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:  # before TimeoutError: a connect time-out is both
            if isinstance(content, _BodyStream) and content.refused is not None:
                raise content.refused from None
            if _nothing_sent(exc):
                replicas.take_out(address, type(exc).__name__)
            if retried or not _may_retry(request, content, exc):
                if isinstance(exc, TimeoutError):
                    raise ServiceUnavailable(f"{service} service timed out", details=type(exc).__name__) from exc
                raise ServiceUnavailable(f"{service} service unavailable", details=type(exc).__name__) from exc
            retried = True
            address = replicas.pick(avoid=address)
            log.info("retrying %s on %s (%s) after %s", request.method, service, address, type(exc).__name__)
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
            raise ServiceUnavailable(f"{service} service timed out", details=type(exc).__name__) from exc
        else:
            if says_stopping(response.headers):  # draining after SIGTERM: answered, but send it no more
                replicas.take_out(address, "stopping")
            return response


async def forward(
    upstreams: Upstreams,
    request: Request,
    service: str,
    *,
    request_id: str,
    identity_header: str | None,
    client_ip: str,
    body_limit: int,
    declared: int | None,
    body: bytes | None = None,
) -> Response:
    """`declared` is the request's declared_length."""
    content: bytes | None | _BodyStream
    if body is not None:
        content = body
    elif declared == 0:
        content = None  # neither Content-Length nor Transfer-Encoding: no body (RFC 9112 6.3)
    elif _small(declared):
        content = await read_body(request, body_limit)
    else:
        content = _BodyStream(request, body_limit)
    # The path as the client sent it (the gateway only routes plain paths, gateway/routing.py), so
    # the service decodes exactly what the gateway routed.
    query: bytes = request.scope["query_string"]
    if not query.isascii():
        query = quote_from_bytes(query, safe=_QUERY_SAFE).encode()
    path_and_query = (request.scope["raw_path"].decode("ascii"), query.decode("ascii"))
    headers = _request_headers(request, request_id, identity_header, client_ip)
    upstream = await _send(upstreams, request, service, path_and_query, headers, content)
    answer_headers = [(k.lower(), v) for k, v in upstream.raw_headers if k.lower() not in _HOP_BY_HOP_RAW]
    response: Response
    if _small(declared_length(upstream.headers)):
        try:
            raw = await upstream.read()
        except (TimeoutError, aiohttp.ClientError) as exc:  # the service went away mid-answer
            raise ServiceUnavailable(f"{service} service unavailable", details=type(exc).__name__) from exc
        finally:
            upstream.release()
        response = Response(raw, status_code=upstream.status)
    else:
        response = StreamingResponse(
            upstream.content.iter_any(), status_code=upstream.status, background=BackgroundTask(upstream.release)
        )
    response.raw_headers = answer_headers
    return response
