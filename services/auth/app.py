"""The auth service: accounts of every document, sessions, the points ledger, ads and API keys."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.auth import accounts, api_keys
from services.auth.api import ads, internal, users_000, users_001, users_003
from services.auth.api import api_keys as api_keys_api
from services.auth.email_codes import EmailCodes
from services.auth.face_client import FaceClient
from services.auth.mailer import Mailer
from services.auth.repository import AuthRepository
from services.auth.settings import AuthSettings
from shared.service_app import build_service_app, peer
from shared.sessions import SessionStore

log = logging.getLogger(__name__)


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.sessions = SessionStore(app.state.redis, app.state.keys)
        app.state.email_codes = EmailCodes(
            app.state.redis, app.state.keys, settings.email_code_ttl_seconds, settings.email_code_max_attempts
        )
        app.state.mailer = Mailer(settings.smtp_host, settings.smtp_port, settings.smtp_sender)
        app.state.face = FaceClient(peer(app, "face"))
        async with app.state.sessionmaker.begin() as session:
            repo = AuthRepository(session)
            if await accounts.bootstrap_admin(repo, settings.admin_user, settings.admin_password):
                log.info("created admin %s", settings.admin_user)
            await api_keys.publish_all(repo, app.state.sessions)
        yield

    return build_service_app(
        name="auth",
        settings=settings,
        routers=[
            users_003.router,
            users_001.router,
            users_000.router,
            ads.router,
            api_keys_api.router,
            internal.router,
        ],
        lifespan=lifespan,
        title="Labelhive auth",
        description="Accounts, sessions, points ledger, ads and API keys.",
    )
