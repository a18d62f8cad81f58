"""The API gateway: routes each path to its owner service, resolves the caller once and hands the
service a signed identity, checks CSRF and rate limits, and serves the merged docs and health."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gateway import docs
from gateway.proxy import Upstreams, declared_length, forward, read_body
from gateway.ratelimit import RateLimiter, account_of, limited_route
from gateway.routing import is_plain_path, owner_of
from gateway.security import CSRF_COOKIE, csrf_ok, new_csrf_token, resolve_identity
from gateway.settings import GatewaySettings
from shared.access import is_public
from shared.body_limits import body_limit
from shared.contract import dialect_for
from shared.edge import too_large
from shared.envelopes import error_response
from shared.errors import (
    CsrfFailed,
    InvalidRequest,
    LabelhiveError,
    MethodNotAllowed,
    NotFound,
    NotLoggedIn,
    RateLimited,
    ServiceUnavailable,
)
from shared.http import Replicas
from shared.identity import IdentitySigner
from shared.logs import configure_logging
from shared.metrics import metrics_router
from shared.redis import Keys, create_redis
from shared.requestctx import current_request_id
from shared.service_app import NO_TELEMETRY, Drain, RequestContextMiddleware, drain_seconds
from shared.sessions import CredentialCache, SessionStore

log = logging.getLogger(__name__)


def _client_ip(request: Request, settings: GatewaySettings) -> str:
    """The peer, or behind trusted proxies the right-most X-Forwarded-For hop that is not one of them:
    hops to its left were written by the client and prove nothing. A hop that is not an address ends
    the walk at the last address before it."""
    proxies = settings.trusted_proxies
    client = request.client.host if request.client else "unknown"
    if not proxies or not _trusted(_address(client), proxies):
        return client
    hops = [hop.strip() for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = hop
        if not _trusted(address, proxies):
            break
    return client


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    return address is not None and any(address in network for network in proxies)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    # After SIGTERM the gateway drains like a service (shared/service_app.py Drain), for its own callers
    # (an Ingress, a load balancer): answers with `Connection: close` for a while before it stops.
    drain = Drain(drain_seconds())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging("gateway", settings.log_level)
        if not settings.internal_secret:
            raise RuntimeError("LABELHIVE_INTERNAL_SECRET is not set")
        redis = create_redis(settings.redis_url)
        keys = Keys(settings.redis_namespace)
        app.state.sessions = CredentialCache(SessionStore(redis, keys), ttl=settings.credential_cache_seconds)
        revocations = asyncio.create_task(app.state.sessions.follow_revocations(), name="follow-revocations")
        app.state.signer = IdentitySigner(settings.internal_secret)
        app.state.limiter = RateLimiter(redis, keys)
        app.state.upstreams = Upstreams(
            {name: settings.service_urls(name) for name in settings.services},
            timeout=settings.upstream_timeout,
            connect_timeout=settings.upstream_connect_timeout,
        )
        app.state.openapi = docs.MergedOpenAPI(app.state.upstreams.replicas)
        try:
            with drain.on_sigterm():
                yield
        finally:
            revocations.cancel()
            await asyncio.gather(revocations, return_exceptions=True)
            await app.state.upstreams.aclose()
            await redis.aclose()

    app = FastAPI(
        title="Labelhive gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=NO_TELEMETRY,
    )
    app.add_middleware(RequestContextMiddleware, service="gateway", drain=drain)
    app.include_router(metrics_router)
    app.mount(docs.ASSETS, StaticFiles(directory=docs.SWAGGER_UI_DIR), name="docs-assets")

    @app.exception_handler(LabelhiveError)
    async def labelhive_error(request: Request, exc: LabelhiveError) -> JSONResponse:
        return error_response(dialect_for(request.method, request.url.path), exc, request.url.path)

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Sessions and rate limits live in Redis: out of reach, the platform is down, not broken.
        log.warning("redis unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return await labelhive_error(
            request, ServiceUnavailable("session store unavailable", details=type(exc).__name__)
        )

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client left while its body was read: nobody hears an answer, and it is no error of ours.
        log.info("client disconnected during %s %s", request.method, request.scope["path"])
        return Response(status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (a method no route takes, such as TRACE), in the route's envelope.
        error = {404: NotFound, 405: MethodNotAllowed}.get(exc.status_code)
        return await labelhive_error(
            request, error() if error else InvalidRequest(str(exc.detail), status_code=exc.status_code)
        )

    @app.get("/get_csrf_token", tags=["gateway"], summary="CSRF token for browser writes (003)")
    async def get_csrf_token() -> JSONResponse:
        token = new_csrf_token(settings.internal_secret)
        response = JSONResponse({"code": 0, "msg": "Succeed", "message": "Succeed", "data": {"csrf_token": token}})
        response.set_cookie(CSRF_COOKIE, token, samesite="lax", path="/")
        return response

    # /healthz needs no login and asks every replica of every service: callers that come while a round of
    # checks is running share it, so a flood of anonymous calls makes one fan-out at a time, not one each.
    health_round: asyncio.Task[JSONResponse] | None = None

    @app.get("/healthz", tags=["gateway"], summary="Health of the gateway and of every service's replicas")
    async def healthz(request: Request) -> Response:
        nonlocal health_round
        if health_round is None or health_round.done():
            health_round = asyncio.create_task(_check_health(request.app.state.upstreams))
        answer = await asyncio.shield(health_round)  # one caller leaving does not cancel the others' round
        return Response(answer.body, status_code=answer.status_code, media_type=answer.media_type)

    async def _check_health(upstreams: Upstreams) -> JSONResponse:

        async def check(replicas: Replicas, address: str) -> dict[str, object]:
            try:
                status, checks = await upstreams.readiness(address)
                result: dict[str, object] = {"status": "ok" if status == 200 else "not ready", "checks": checks}
            except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as exc:
                result = {"status": "down", "error": type(exc).__name__}
            if result["status"] != "ok":  # e.g. a replica draining after SIGTERM: its probe brings it back
                replicas.take_out(address, f"/readyz {result['status']}")
            return result

        async def service(name: str) -> tuple[str, dict[str, object]]:
            replicas = upstreams.replicas[name]
            results = await asyncio.gather(*(check(replicas, address) for address in replicas.urls))
            # A service is as healthy as its best replica: the others are out of the rotation until ready.
            best = min(results, key=lambda r: ["ok", "not ready", "down"].index(str(r["status"])))
            return name, {
                **best,
                "replicas": [
                    # Numbered, not named: an anonymous caller learns no internal address.
                    {"replica": number, "in_rotation": replicas.in_rotation(address), **result}
                    for number, (address, result) in enumerate(zip(replicas.urls, results, strict=True), 1)
                ],
            }

        results = dict(await asyncio.gather(*(service(name) for name in upstreams.replicas)))
        healthy = all(r["status"] == "ok" for r in results.values())
        return JSONResponse(
            {
                "code": 0 if healthy else 1002,
                "message": "ok" if healthy else "degraded",
                "data": {"gateway": "ok", "services": results},
            },
            status_code=200 if healthy else 503,
        )

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        own = app.openapi()
        return JSONResponse(await request.app.state.openapi.spec(own))

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> Response:
        return docs.swagger_page()

    async def proxy(request: Request) -> Response:
        method, path = request.method, request.scope["path"]  # the decoded path, without building a URL
        if not is_plain_path(request.scope["raw_path"], path):
            raise NotFound()
        service = owner_of(method, path)
        if service is None:
            raise NotFound()
        if service not in request.app.state.upstreams:
            raise ServiceUnavailable(f"the {service} service is not deployed")
        multipart = request.headers.get("content-type", "").lower().startswith("multipart/")
        limit = body_limit(method, path, multipart)
        declared = declared_length(request.headers)
        if declared is not None and declared > limit:  # refused before a byte of it is read
            raise too_large(limit, dialect_for(method, path))
        identity, presented_by = await resolve_identity(request, request.app.state.sessions)
        # An anonymous body for a route that needs a caller is refused unread. (A bodiless request
        # goes on: its service answers in the words its document gives, e.g. 001's 请先登录.)
        if identity is None and declared != 0 and not is_public(method, path):
            raise NotLoggedIn()
        if not csrf_ok(request, presented_by, settings.internal_secret, settings.allowed_origins):
            raise CsrfFailed()
        client_ip = _client_ip(request, settings)
        body = None
        limited = limited_route(method, path) if settings.rate_limits else None
        if limited is not None:
            # Only a limit that counts per named account needs the body (small JSON); others stream on.
            if limited.body_fields:
                body = await read_body(request, limit)
            account = account_of(
                limited, body or b"", dict(request.query_params), identity.user_id if identity else None
            )
            if not await request.app.state.limiter.allow(limited.limit, client_ip, account):
                raise RateLimited()
        identity_header = request.app.state.signer.header(identity) if identity else None
        return await forward(
            request.app.state.upstreams,
            request,
            service,
            request_id=current_request_id.get(),
            identity_header=identity_header,
            client_ip=client_ip,
            body_limit=limit,
            declared=declared,
            body=body,
        )

    # A plain Starlette route: it takes no parameters FastAPI would have to resolve per request.
    app.router.add_route(
        "/{path:path}",
        proxy,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    return app
