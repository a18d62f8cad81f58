"""Document 000's user endpoints: `POST /api/users` and `POST /login` (requesters)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.auth import accounts
from services.auth.api.deps import Repo, Sessions, set_session_cookie
from services.auth.errors import ExistingUsername, PasswordFormat, UsernameFormat
from services.auth.schemas import Login000, Register000, UserAnswer000
from shared.envelopes import envelope_000
from shared.errors import InvalidRequest, LabelhiveError

router = APIRouter(tags=["users (000)"])


@router.post("/api/users", response_model=UserAnswer000)
async def create_user(body: Register000, request: Request, repo: Repo) -> JSONResponse:
    try:
        await accounts.ensure_new_name(repo, body.user_name)
        accounts.check_formats(body.user_name, body.password, strict=False)
        await accounts.create_user(repo, accounts.NewAccount(body.user_name, body.password, "demand"))
    except ExistingUsername:
        raise LabelhiveError("用户已存在", code="4003") from None
    except (UsernameFormat, PasswordFormat) as exc:
        raise InvalidRequest(f"参数错误: {exc.message}") from None
    return JSONResponse(envelope_000("0", "OK", request.url.path, user_name=body.user_name))


@router.post("/login", response_model=UserAnswer000)
async def login(body: Login000, request: Request, repo: Repo, sessions: Sessions) -> JSONResponse:
    if not body.name:
        raise InvalidRequest("参数错误: username is required")
    user = await accounts.authenticate(repo, body.name, body.password)
    if user is None:
        raise LabelhiveError("用户名或密码错误", code="4102")
    accounts.ensure_not_banned(user)
    token = await sessions.create(user.id, user.user_name, user.user_type)
    response = JSONResponse(envelope_000("0", "OK", request.url.path, user_name=user.user_name))
    set_session_cookie(response, token, sessions.ttl)
    return response
