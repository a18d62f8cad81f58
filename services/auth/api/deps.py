"""Dependencies the auth routers share."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from pydantic import BaseModel, ValidationError

from services.auth.email_codes import EmailCodes
from services.auth.face_client import FaceClient
from services.auth.mailer import Mailer
from services.auth.repository import AuthRepository
from services.auth.settings import AuthSettings
from shared.db import DbSession
from shared.errors import InvalidRequest
from shared.sessions import SESSION_COOKIE, SessionStore

M = TypeVar("M", bound=BaseModel)


def _repo(session: DbSession) -> AuthRepository:
    return AuthRepository(session)


def _state(name: str) -> Any:
    def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(dependency)


Repo = Annotated[AuthRepository, Depends(_repo)]
Sessions = Annotated[SessionStore, _state("sessions")]
Codes = Annotated[EmailCodes, _state("email_codes")]
MailerDep = Annotated[Mailer, _state("mailer")]
Face = Annotated[FaceClient, _state("face")]
Settings = Annotated[AuthSettings, _state("settings")]


def client_idempotency_key(request: Request) -> str:
    """The client's `Idempotency-Key` header (a retry with it changes nothing), else a fresh one."""
    supplied = request.headers.get("Idempotency-Key", "").strip()
    if supplied and len(supplied) <= 100:
        return supplied
    return uuid.uuid4().hex


IdempotencyKey = Annotated[str, Depends(client_idempotency_key)]


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequest("invalid request: body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("invalid request: body must be a JSON object")
    return body


def parse(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidRequest(f"invalid request: {problems}") from None


def set_session_cookie(response: Response, token: str, ttl: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=ttl, httponly=True, samesite="lax", path="/")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
