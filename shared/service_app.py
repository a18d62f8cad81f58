"""What every service app has in common: lifespan (database, Redis, migrations), the request-id
and metrics middleware, the edge checks (shared/edge.py), the one error handler, the declared error
answers (shared/openapi.py), health and readiness, and the drain after SIGTERM (`Drain`, the gateway's
too)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from types import FrameType
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.contract import Dialect
from shared.db import (
    RefusedInput,
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
    database_unavailable,
    refused_input,
)
from shared.edge import BodyTooLarge, EdgeGuardMiddleware, invalid_input, request_dialect, say
from shared.envelopes import error_response
from shared.errors import (
    InternalError,
    InvalidRequest,
    LabelhiveError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from shared.http import KEEPALIVE_SECONDS, ServiceClient
from shared.logs import configure_logging
from shared.metrics import metrics_router, observe
from shared.migrations import upgrade_async
from shared.openapi import install_declared_schema
from shared.params import INT32_MAX
from shared.redis import Keys, create_redis
from shared.requestctx import REQUEST_ID_HEADER, current_request_id, request_started_at
from shared.settings import PlatformSettings

log = logging.getLogger(__name__)

ServiceLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
# FastAPI's own OpenTelemetry hooks look the providers up (environment included) on every request;
# the platform's metrics are its Prometheus ones (shared/metrics.py).
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
_CONNECTION_CLOSE = (b"connection", b"close")

# Longer than the gateway and the peer clients keep an idle connection (shared/http.py): when the drain
# ends and the server closes the connections left, none of them is one a caller would still reuse.
DEFAULT_DRAIN_SECONDS = KEEPALIVE_SECONDS + 1


def drain_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """`LABELHIVE_DRAIN_SECONDS`: how long a process keeps serving after SIGTERM (0: no drain)."""
    value = environ.get("LABELHIVE_DRAIN_SECONDS", "").strip()
    if not value:
        return DEFAULT_DRAIN_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"LABELHIVE_DRAIN_SECONDS must be a number of seconds, 0 or more, not {value!r}")
    return seconds


class Drain:
    """A process that gets SIGTERM (a rolling restart, Kubernetes ending a pod) keeps serving for `seconds`
    before the server's own shutdown begins. Meanwhile `/readyz` answers 503, so that the gateway's and the
    peers' probes, and Kubernetes', leave it out; every answer carries `Connection: close`, so that a
    caller drops the connection after it (the gateway and the peer clients also take the replica out of
    their rotation on seeing it, shared/http.py Replicas); and new connections are still accepted, for
    callers that have not heard yet. Then uvicorn's graceful shutdown runs as before: it stops listening,
    closes the idle connections (by then none a caller would reuse: see DEFAULT_DRAIN_SECONDS), waits for
    the requests in flight, and runs the lifespan's end, which stops the background work.

    Without it, that shutdown closed idle keep-alive connections at SIGTERM, and a request a caller sent
    on one in the same instant got no answer: a 503 for a POST, which may not be sent twice."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.draining = False

    @contextmanager
    def on_sigterm(self) -> Iterator[None]:
        """While inside, SIGTERM starts the drain, and the handler it replaced (the server's: uvicorn's
        shutdown) gets the signal when the drain ends; a second SIGTERM hands it over at once. Signals
        reach only the main thread: elsewhere (an app run inside a test's thread) nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        server_handler = signal.getsignal(signal.SIGTERM) or signal.SIG_DFL  # None: not set from Python
        timer: asyncio.TimerHandle | None = None
        handed_over = False
        self.draining = False

        def hand_over() -> None:
            nonlocal handed_over
            if handed_over:
                return
            handed_over = True
            if timer is not None:
                timer.cancel()
            if callable(server_handler):
                server_handler(signal.SIGTERM, None)
            else:  # no server's handler (SIG_DFL, SIG_IGN): the signal does what it would have done
                signal.signal(signal.SIGTERM, server_handler)
                signal.raise_signal(signal.SIGTERM)

        def in_loop() -> None:
            nonlocal timer
            if self.draining:
                log.warning("SIGTERM again: stopping now")
                hand_over()
                return
            self.draining = True
            log.warning("SIGTERM: draining for %gs before stopping", self.seconds)
            timer = loop.call_later(self.seconds, hand_over)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # A signal handler may run between any two bytecodes, the loop's own included: it only
            # queues the work, by the one loop call that is safe there.
            loop.call_soon_threadsafe(in_loop)

        signal.signal(signal.SIGTERM, on_signal)
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
            if signal.getsignal(signal.SIGTERM) is on_signal:
                signal.signal(signal.SIGTERM, server_handler)


def new_request_id(incoming: str | None) -> str:
    # Accept a caller's id only if it looks like one, so logs cannot be forged with junk.
    if incoming and len(incoming) <= 64 and incoming.replace("-", "").isalnum():
        return incoming
    return os.urandom(16).hex()  # what uuid4().hex is made of, without building a UUID


class RequestContextMiddleware:
    """Sets the request id and start time, echoes the id, records metrics per route template, and
    answers an unhandled error itself: inside this middleware the request id is still set, so the
    answer and the log line both carry it (Starlette's ServerErrorMiddleware runs outside it). During
    the process's drain every answer says `Connection: close`."""

    def __init__(self, app: ASGIApp, service: str, drain: Drain) -> None:
        self.app = app
        self.service = service
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == _REQUEST_ID_KEY), None)  # ASGI names are lowercase
        request_id = new_request_id(incoming.decode("latin-1") if incoming is not None else None)
        id_token = current_request_id.set(request_id)
        started = time.perf_counter()
        time_token = request_started_at.set(started)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = message.setdefault("headers", [])
                if not any(k.lower() == _REQUEST_ID_KEY for k, _ in headers):  # a proxied answer has it
                    headers.append((_REQUEST_ID_KEY, request_id.encode()))
                if self.drain.draining:
                    headers.append(_CONNECTION_CLOSE)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if response_started:  # too late for an error answer: let the server drop the connection
                raise
            request = Request(scope)
            # The id goes in the body too where the envelope has room (003's data, 004's details).
            error = InternalError(data={"request_id": request_id}, details=f"request id {request_id}")
            await error_response(request_dialect(request), error, request.url.path)(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            observe(self.service, scope["method"], template, status, time.perf_counter() - started)
            current_request_id.reset(id_token)
            request_started_at.reset(time_token)


def _names_nothing(request: Request) -> bool:
    """Whether a path parameter is an integer no Integer column holds: an id that names nothing."""
    return any(
        value.lstrip("-").isdigit() and not -INT32_MAX - 1 <= int(value) <= INT32_MAX
        for value in map(str, request.path_params.values())
    )


_PATH_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def _refusal_message(dialect: Dialect, refused: RefusedInput) -> str:
    english, chinese = {
        RefusedInput.OUT_OF_RANGE: ("a number is out of range", "数值超出范围"),
        RefusedInput.NUL_CHARACTER: ("text must not contain NUL characters (\\u0000)", "文本不能包含NUL字符(\\u0000)"),
        RefusedInput.TOO_LONG: ("a text is too long", "文本过长"),
        RefusedInput.MALFORMED: ("a value has the wrong format", "数据格式错误"),
    }[refused]
    return say(dialect, f"invalid request: {english}", f"参数错误: {chinese}")


def refused_input_response(request: Request, exc: DBAPIError) -> JSONResponse | None:
    """The 4xx for a value the database refused (the edge let it through), or None when the failure
    is not the input's."""
    refused = refused_input(exc)
    if refused is None:
        return None
    dialect = request_dialect(request)
    # Worth a line: a router could refuse such a value more precisely.
    log.warning("database refused %s on %s %s", refused, request.method, request.url.path)
    error: LabelhiveError
    if refused is RefusedInput.OUT_OF_RANGE and _names_nothing(request):
        error = NotFound()
    else:
        error = InvalidRequest(_refusal_message(dialect, refused))
    return error_response(dialect, error, request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Every error a route raises becomes an answer in the route's envelope. Unhandled ones are
    answered by RequestContextMiddleware (a 500 that carries the request id)."""

    async def labelhive_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LabelhiveError)
        return error_response(request_dialect(request), exc, request.url.path)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        error: LabelhiveError
        if errors and all(
            e.get("type") in _PATH_RANGE_ERRORS and tuple(e.get("loc", ()))[:1] == ("path",) for e in errors
        ):
            error = NotFound()  # an id outside its type's range (shared/params.py) names nothing
        else:
            error = invalid_input(errors, request_dialect(request))
        return error_response(request_dialect(request), error, request.url.path)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error: LabelhiveError
        if exc.status_code == 404:
            error = NotFound()
        elif exc.status_code == 405:
            error = MethodNotAllowed()
        elif exc.status_code == 413:
            error = PayloadTooLarge(str(exc.detail) if isinstance(exc, BodyTooLarge) else None)
        else:
            error = InvalidRequest(str(exc.detail), status_code=exc.status_code)
        return error_response(request_dialect(request), error, request.url.path)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError)
        if (response := refused_input_response(request, exc)) is not None:
            return response
        if database_unavailable(exc):
            log.error("database unavailable on %s %s: %r", request.method, request.url.path, exc.orig)
            return error_response(
                request_dialect(request), ServiceUnavailable("database unavailable"), request.url.path
            )
        raise exc  # a real failure: RequestContextMiddleware logs it and answers 500

    app.add_exception_handler(LabelhiveError, labelhive_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DBAPIError, database_error)


def health_router(service: str, drain: Drain) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"code": 0, "message": "alive", "data": {"service": service}}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        if drain.draining:  # stopping: whatever its checks say, no new work should come here
            body = {
                "code": 1002,
                "message": "draining",
                "data": {"service": service, "checks": {"process": "draining"}},
            }
            return JSONResponse(body, status_code=503)
        checks: dict[str, str] = {}
        state = request.app.state
        try:
            await state.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # readiness reports any failure rather than raising it
            checks["redis"] = f"error: {type(exc).__name__}"
        if getattr(state, "engine", None) is not None:
            try:
                async with state.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                checks["database"] = "ok"
            except Exception as exc:
                checks["database"] = f"error: {type(exc).__name__}"
        for name, check in getattr(state, "readiness_checks", {}).items():
            checks[name] = await check()
        ready = all(v == "ok" for k, v in checks.items() if k in ("redis", "database"))
        body = {
            "code": 0 if ready else 1002,
            "message": "ready" if ready else "not ready",
            "data": {"service": service, "checks": checks},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return router


def app_state(name: str) -> Any:
    """A dependency giving the app's `state.<name>` (set by its lifespan):
    `Settings = Annotated[AuthSettings, app_state("settings")]`."""

    async def dependency(request: Request) -> Any:  # a coroutine: FastAPI runs a plain function in a thread
        return getattr(request.app.state, name)

    return Depends(dependency)


def peer(app: FastAPI, name: str) -> ServiceClient:
    """The long-lived client for calls from this service to `name`, closed when the app stops."""
    clients: dict[str, ServiceClient] = app.state.peers
    if name not in clients:
        settings = app.state.settings
        clients[name] = ServiceClient(name, settings.service_url(name), app.state.service, settings.internal_secret)
    return clients[name]


def run_in_background(app: FastAPI, work: Coroutine[Any, Any, None], name: str) -> None:
    """Runs `work` for the app's lifetime; it is cancelled (and awaited) when the app stops."""
    app.state.background.append(asyncio.create_task(work, name=name))


def build_service_app(
    *,
    name: str,
    settings: PlatformSettings,
    routers: list[APIRouter],
    lifespan: ServiceLifespan | None = None,
    uses_database: bool = True,
    title: str,
    description: str = "",
) -> FastAPI:
    """A service app: `lifespan` runs inside the common one, with state.settings, state.redis,
    state.keys and (when `uses_database`) state.engine, state.sessionmaker and state.read_sessionmaker
    already set. Clients made with `peer()` and work started with `run_in_background()` are stopped by
    the common one. After SIGTERM the app drains (`Drain`, for LABELHIVE_DRAIN_SECONDS) before the
    server stops it."""
    drain = Drain(drain_seconds())

    @asynccontextmanager
    async def common_lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(name, settings.log_level)
        if not settings.internal_secret:
            raise RuntimeError("LABELHIVE_INTERNAL_SECRET is not set")
        app.state.settings = settings
        app.state.service = name
        app.state.peers = {}
        app.state.background = []
        app.state.redis = create_redis(settings.redis_url)
        app.state.keys = Keys(settings.redis_namespace)
        app.state.engine = None
        if uses_database:
            await upgrade_async(name, settings.database_url)
            app.state.engine = create_engine(settings.database_url, name)
            app.state.sessionmaker = create_sessionmaker(app.state.engine)
            app.state.read_sessionmaker = create_read_sessionmaker(app.state.engine)
        try:
            async with lifespan(app) if lifespan else nullcontext():
                try:
                    with drain.on_sigterm():
                        yield
                finally:
                    for task in app.state.background:
                        task.cancel()
                    await asyncio.gather(*app.state.background, return_exceptions=True)
        finally:
            await asyncio.gather(*(client.aclose() for client in app.state.peers.values()))
            if app.state.engine is not None:
                await app.state.engine.dispose()
            await app.state.redis.aclose()

    app = FastAPI(
        title=title,
        description=description,
        lifespan=common_lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=NO_TELEMETRY,
    )
    # The last added runs first: the request id is set before the edge can refuse anything.
    app.add_middleware(EdgeGuardMiddleware)
    app.add_middleware(RequestContextMiddleware, service=name, drain=drain)
    install_error_handlers(app)
    install_declared_schema(app)
    app.include_router(health_router(name, drain))
    app.include_router(metrics_router)
    for router in routers:
        app.include_router(router)
    return app
