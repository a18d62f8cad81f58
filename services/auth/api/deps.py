"""Dependencies the auth routers share."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request, Response

from services.auth.email_codes import EmailCodes
from services.auth.face_client import FaceClient
from services.auth.mailer import Mailer
from services.auth.repository import AuthRepository
from services.auth.settings import AuthSettings
from shared.db import DbSession, ReadSession
from shared.service_app import app_state
from shared.sessions import SESSION_COOKIE, SessionStore


# Dependencies are coroutines: FastAPI runs a plain function in its thread pool, a thread hop per request.
async def _repo(session: DbSession) -> AuthRepository:
    return AuthRepository(session)


async def _read_repo(session: ReadSession) -> AuthRepository:
    return AuthRepository(session)


Repo = Annotated[AuthRepository, Depends(_repo)]
# For routes that only read (shared/db.py ReadSession): no BEGIN and COMMIT around their queries.
ReadRepo = Annotated[AuthRepository, Depends(_read_repo)]
Sessions = Annotated[SessionStore, app_state("sessions")]
Codes = Annotated[EmailCodes, app_state("email_codes")]
MailerDep = Annotated[Mailer, app_state("mailer")]
Face = Annotated[FaceClient, app_state("face")]
Settings = Annotated[AuthSettings, app_state("settings")]


async def client_idempotency_key(request: Request) -> str:
    """The client's `Idempotency-Key` header (a retry with it changes nothing), else a fresh one."""
    supplied = request.headers.get("Idempotency-Key", "").strip()
    if supplied and len(supplied) <= 100:
        return supplied
    return uuid.uuid4().hex


IdempotencyKey = Annotated[str, Depends(client_idempotency_key)]


def set_session_cookie(response: Response, token: str, ttl: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=ttl, httponly=True, samesite="lax", path="/")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
