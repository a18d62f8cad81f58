"""Calls from one service to another, and the replicas a service runs as.

`Replicas` is the one balancing rule, used by the gateway (gateway/proxy.py) and by `ServiceClient`: a
service's addresses (`LABELHIVE_<SERVICE>_URL`, comma-separated) are taken in turn, one that refuses a
connection or says it is stopping (an answer with `Connection: close`, shared/service_app.py Drain) is
taken out of the rotation, and a light probe puts it back once its `/readyz` answers 200.

`ServiceClient` is one long-lived httpx client per peer service: bounded timeouts, the request id
propagated, the call signed as coming from this service, optional end-user identity. Its requests go
over aiohttp's connection pool (`AiohttpTransport`): httpx's own pool checks every idle connection's
socket on each request and was most of the CPU a call to a peer cost.

`may_retry` is the one rule for sending a failed request again, here and in the gateway, and
`PooledConnector` the one pool of keep-alive connections both use."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import logging
import select
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import aiohttp
import httpx
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from shared.errors import ServiceUnavailable
from shared.identity import CALLER_HEADER, IDENTITY_HEADER, Identity, sign_caller, sign_identity
from shared.requestctx import REQUEST_ID_HEADER, current_request_id
from shared.settings import split_urls

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
# How often a replica out of the rotation is asked whether it is ready again.
PROBE_INTERVAL_SECONDS = 1.0
# Safe to send twice: the method says so, or the caller's Idempotency-Key does (the services keep its
# first answer).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Idle pooled connections are closed before a service would close them (uvicorn's keep-alive is 5 s),
# so that the race `may_retry` covers stays rare.
KEEPALIVE_SECONDS = 4.0


def may_retry(method: str, *, idempotency_key: bool, nothing_sent: bool, timed_out: bool) -> bool:
    """Whether a request that failed in transport may go once more, to another replica where there is
    one, else on a fresh connection.

    A service that closes a keep-alive connection (as uvicorn does after a 500, or when it is idle)
    races the caller's next request on it, which then fails without an answer. Nothing was sent when
    the connection could not even be made; otherwise the request may have been read, so only a
    request that is safe to repeat goes again, and not after a time-out (the service may still be
    working on it).
    """
    if nothing_sent:
        return True
    return (method in IDEMPOTENT_METHODS or idempotency_key) and not timed_out


def says_stopping(headers: Mapping[str, str]) -> bool:
    """Whether an answer's headers say its replica is stopping: a service draining after SIGTERM answers
    with `Connection: close` (and nothing else of the platform's does)."""
    return headers.get("connection", "").lower() == "close"


class Replicas:
    """The addresses of one service: `pick()` takes the ones in the rotation in turn, `take_out()` takes
    one out (a connection failure, an answer that says it is stopping, a /readyz that is not 200), and a
    background probe (running only while one is out) puts it back when `probe(url)` says it is ready."""

    def __init__(
        self,
        service: str,
        urls: Sequence[str],
        probe: Callable[[str], Awaitable[bool]],
        *,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
    ) -> None:
        if not urls:
            raise ValueError(f"no address for the {service} service")
        self.service = service
        self.urls = list(urls)
        self.out: set[str] = set()
        self._turn = itertools.cycle(self.urls)
        self._probe = probe
        self._probe_interval = probe_interval
        self._prober: asyncio.Task[None] | None = None

    def pick(self, avoid: str | None = None) -> str:
        """The next replica in the rotation, other than `avoid` where there is another. With every
        replica out, each is still tried in turn: a refused call costs little, and one may be back."""
        candidates = [url for url in self.urls if url not in self.out and url != avoid]
        if not candidates:
            candidates = [url for url in self.urls if url != avoid] or self.urls
        for url in self._turn:
            if url in candidates:
                return url
        raise AssertionError("unreachable: the rotation cycles over every url")

    def in_rotation(self, url: str) -> bool:
        return url not in self.out

    def take_out(self, url: str, why: str) -> None:
        """Out of the rotation until its probe answers: `url` refused a connection, or it is stopping."""
        if len(self.urls) == 1 or url in self.out:
            return  # a lone replica stays: there is no other to send its requests to
        self.out.add(url)
        log.warning("%s replica %s out of the rotation: %s", self.service, url, why)
        if self._prober is None or self._prober.done():
            # A context of its own: the probe belongs to no request, so its log lines carry no request id.
            self._prober = asyncio.create_task(
                self._bring_back(), name=f"probe-{self.service}", context=contextvars.Context()
            )

    async def _bring_back(self) -> None:
        while self.out:
            await asyncio.sleep(self._probe_interval)
            for url in list(self.out):
                if await self._probe(url):
                    self.out.discard(url)
                    log.warning("%s replica %s back in the rotation", self.service, url)

    async def aclose(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober


class _PooledConnection(ResponseHandler):
    """aiohttp's protocol for one connection, reused only while the service has not closed it.

    A replica that stops closes its idle keep-alive connections at once (uvicorn's graceful shutdown),
    but this side learns of it only when its event loop next reads the socket, which a busy loop may do
    much later. A request handed the connection before then goes into a closed socket and gets no
    answer, and one that may not be repeated (a POST without an Idempotency-Key) becomes a 503. So an
    idle connection is also asked the kernel: one with something to read (the service's close, or
    bytes nobody asked for) is not reused."""

    def is_connected(self) -> bool:  # aiohttp asks it of idle connections only: before reuse, and when pruning
        if not super().is_connected():
            return False
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return True
        poller = select.poll()
        try:
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):  # closed under us
            return False


class PooledConnector(aiohttp.TCPConnector):
    """aiohttp's connection pool, whose idle connections are checked for a close from the service before
    reuse (`_PooledConnection`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The protocol each connection is made with; aiohttp names it `_factory` since 3.0.
        self._factory = cast(
            "functools.partial[ResponseHandler]", functools.partial(_PooledConnection, loop=self._loop)
        )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over one aiohttp connection pool. Bodies to and from peers are
    small JSON: both are held whole. aiohttp's errors become the httpx errors they correspond to."""

    def __init__(self, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made in the running loop, on first use

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = PooledConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes the body as the Content-Encoding says
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                raise_for_status=False,
            )
            # A failed request is sent again by ServiceClient's rule (may_retry), not by aiohttp's own.
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        body = await request.aread()
        try:
            async with self._pool().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
        except aiohttp.ConnectionTimeoutError as exc:  # before ClientConnectorError: nothing was sent
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except TimeoutError as exc:  # aiohttp's socket read time-out is one
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientOSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        return httpx.Response(answer.status, headers=list(answer.raw_headers), content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class ServiceClient:
    """Calls one peer service over its replicas. A call whose connection failed before anything was sent,
    or one safe to repeat (GET, HEAD, OPTIONS, or an Idempotency-Key) that failed in transport, goes
    once more to another replica; failures and timeouts after that become `ServiceUnavailable` (503)."""

    def __init__(
        self,
        peer: str,
        base_url: str | Sequence[str],
        caller: str,
        secret: str,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.peer = peer
        self._caller = caller
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport or AiohttpTransport())
        urls = split_urls(base_url) if isinstance(base_url, str) else list(base_url)
        self.replicas = Replicas(peer, urls, self._ready)

    async def _ready(self, url: str) -> bool:
        try:
            return (await self._client.get(f"{url}/readyz", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

    async def request(
        self, method: str, path: str, *, identity: Identity | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        headers[CALLER_HEADER] = sign_caller(self._caller, self._secret)
        if request_id := current_request_id.get():
            headers[REQUEST_ID_HEADER] = request_id
        if identity is not None:
            headers[IDENTITY_HEADER] = sign_identity(identity, self._secret)
        idempotency_key = any(k.lower() == "idempotency-key" for k in headers)
        url = self.replicas.pick()
        retried = False
        while True:
            try:
                response = await self._client.request(method, f"{url}{path}", headers=headers, **kwargs)
            except httpx.TransportError as exc:
                nothing_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if nothing_sent:
                    self.replicas.take_out(url, type(exc).__name__)
                timed_out = isinstance(exc, httpx.TimeoutException)
                if retried or not may_retry(
                    method.upper(), idempotency_key=idempotency_key, nothing_sent=nothing_sent, timed_out=timed_out
                ):
                    raise ServiceUnavailable(f"{self.peer} service unavailable", details=type(exc).__name__) from exc
                retried = True
                url = self.replicas.pick(avoid=url)
                log.info("retrying %s %s on another %s replica after %s", method, path, self.peer, type(exc).__name__)
            else:
                if says_stopping(response.headers):  # draining after SIGTERM: answered, but send it no more
                    self.replicas.take_out(url, "stopping")
                return response

    async def aclose(self) -> None:
        await self.replicas.aclose()
        await self._client.aclose()
