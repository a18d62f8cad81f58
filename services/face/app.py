"""The face service: document 002's recognition engine (collections, 1:N search, 1:1 compare), face login
for auth and face datasets for the dataset service.

Start-up loads the models (missing files are no reason not to start: the endpoints that need a model
answer 503 saying to run `make models`, the others work), subscribes to the replicas' change channel and
builds every collection's index from PostgreSQL, so a restart rebuilds them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from services.face.api import internal, recocomp
from services.face.collection_operations import FaceContext
from services.face.errors import DATABASE_ERRORS, DatabaseError, FaceApiError
from services.face.face_login_and_datasets import Refusal
from services.face.image_embedding import Recognizer, load_engine
from services.face.index_registry import IndexRegistry
from services.face.repository import USERS, USERS_COLLECTION, FaceRepository
from services.face.settings import FaceSettings
from services.face.sync import ChangeBus
from shared.contract import Dialect, dialect_for
from shared.db import database_unavailable
from shared.envelopes import error_response
from shared.errors import ServiceUnavailable
from shared.service_app import build_service_app, refused_input_response

log = logging.getLogger(__name__)


def install_face_error_handlers(app: FastAPI) -> None:
    async def face_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FaceApiError)
        dialect = dialect_for(request.method, request.url.path)
        if dialect is not Dialect.FACE_002:
            return error_response(dialect, exc, request.url.path)
        body = {"err_code": exc.code, "err_msg": exc.message}
        if exc.details:
            body["detail"] = exc.details
        return JSONResponse(body, status_code=exc.status_code)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError):
            if (response := refused_input_response(request, exc)) is not None:
                return response
            if not database_unavailable(exc):
                raise exc  # a real failure: logged and answered 500 with its request id, as elsewhere
        log.error("database error on %s %s: %r", request.method, request.url.path, exc)
        dialect = dialect_for(request.method, request.url.path)
        if dialect is Dialect.FACE_002:
            return await face_api_error(request, DatabaseError(type(exc).__name__))
        return error_response(dialect, ServiceUnavailable("face database unavailable"), request.url.path)

    async def refusal(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Refusal)
        return internal.refused(exc)

    app.add_exception_handler(FaceApiError, face_api_error)
    app.add_exception_handler(Refusal, refusal)
    # DBAPIError too: the common handler registered for it would otherwise answer before these.
    database_errors: tuple[type[Exception], ...] = (DBAPIError, *DATABASE_ERRORS)
    for kind in database_errors:
        app.add_exception_handler(kind, database_error)


def create_app(settings: FaceSettings | None = None) -> FastAPI:
    settings = settings or FaceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine, missing = await asyncio.to_thread(load_engine, settings)
        recognizer = Recognizer(
            engine,
            missing,
            settings.face_inference_workers,
            settings.face_max_image_bytes,
            settings.quality_thresholds(),
            settings.orientation(),
        )
        registry = IndexRegistry(app.state.sessionmaker, settings.index_settings(), settings.face_event_wait_seconds)
        async with app.state.sessionmaker.begin() as session:
            await FaceRepository(session).ensure_collection(
                USERS, None, USERS_COLLECTION, engine.model_name if engine else None, engine.dim if engine else None
            )
        bus = ChangeBus(app.state.redis, app.state.keys, registry, settings.face_sync_interval_seconds)
        await bus.start()
        app.state.face = FaceContext(settings, recognizer, registry, bus, app.state.read_sessionmaker)
        log.info(
            "face indexes loaded: %d collection(s), %d vector(s)",
            len(registry.describe()),
            sum(c["size"] for c in registry.describe().values()),
        )

        async def model_check() -> str:
            return "ok" if recognizer.available else "missing"

        async def sync_check() -> str:
            return "ok" if bus.subscribed else "not subscribed"

        app.state.readiness_checks = {"model": model_check, "replica_sync": sync_check}
        try:
            yield
        finally:
            await bus.stop()
            recognizer.shutdown()

    app = build_service_app(
        name="face",
        settings=settings,
        routers=[recocomp.router, internal.router],
        lifespan=lifespan,
        title="Labelhive face",
        description="Face recognition engine (document 002): collections, 1:N search, 1:1 compare; face login "
        "and face datasets for the other services.",
    )
    install_face_error_handlers(app)
    return app
