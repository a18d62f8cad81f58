"""Document 001's user endpoints: managers (checked `demand` users) and experts (`tag` users with
an area). Its clients compare the `response` text, so errors use its exact wording."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from services.auth import accounts
from services.auth.api.deps import (
    Repo,
    Sessions,
    clear_session_cookie,
    set_session_cookie,
)
from services.auth.errors import ExistingUsername, PasswordFormat, UsernameFormat
from services.auth.repository import AuthRepository
from services.auth.schemas import Credentials001, CurrentUser001, Expert001, LoggedIn001, Register001
from shared.access import Credential
from shared.errors import InvalidRequest, LabelhiveError
from shared.identity import Identity, MaybeIdentity, require_roles
from shared.response_models import Envelope001

router = APIRouter(tags=["users (001)"])

MANAGER_ROLES = ("demand", "admin")
USERTYPE_001 = {"demand": "manager", "admin": "manager", "tag": "expert", "agent": "agent"}


def _response(value: object, status_code: int = 200, **extra: object) -> JSONResponse:
    return JSONResponse({"response": value, **extra}, status_code)


async def _register(repo: AuthRepository, account: accounts.NewAccount) -> JSONResponse:
    try:
        await accounts.ensure_new_name(repo, account.user_name)
        accounts.check_formats(account.user_name, account.password, strict=False)
        await accounts.create_user(repo, account)
    except ExistingUsername:
        raise LabelhiveError("注册失败,用户名已存在") from None
    except UsernameFormat:
        raise InvalidRequest("注册失败,用户名须为2到64个非空白字符") from None
    except PasswordFormat:
        raise InvalidRequest("注册失败,密码须为6到128个字符") from None
    return _response("注册成功")


async def register_expert(repo: AuthRepository, body: Register001) -> JSONResponse:
    """`POST /user/register` with 001's body (routed here by the 003 router, which owns the path)."""
    area = body.user_area.strip() or None
    return await _register(repo, accounts.NewAccount(body.username, body.password, "tag", area=area, checked=True))


@router.post("/user/register-manager", response_model=Envelope001[str])
async def register_manager(body: Credentials001, repo: Repo) -> JSONResponse:
    return await _register(repo, accounts.NewAccount(body.username, body.password, "demand", checked=True))


@router.get("/user/login", response_model=LoggedIn001)
async def login(
    repo: Repo,
    sessions: Sessions,
    username: Annotated[str | None, Query(max_length=64)] = None,
    password: Annotated[str | None, Query(max_length=128)] = None,
) -> JSONResponse:
    if username is None or password is None:
        raise InvalidRequest("登陆失败,请提供username和password")
    if await repo.user_by_name(username) is None:
        return _response("登陆失败,账号不存在,请先注册", 400)
    user = await accounts.authenticate(repo, username, password)
    if user is None:
        return _response("登陆失败,用户名或密码不正确", 400)
    accounts.ensure_not_banned(user)
    token = await sessions.create(user.id, user.user_name, user.user_type)
    response = _response("登录成功", 200, **{"Session-Id": token})
    set_session_cookie(response, token, sessions.ttl)
    return response


@router.get("/user/logout", response_model=Envelope001[str])
async def logout(identity: MaybeIdentity, sessions: Sessions) -> JSONResponse:
    if identity is not None and identity.via == Credential.SESSION:
        await sessions.revoke(identity)
    response = _response("登出成功")
    clear_session_cookie(response)
    return response


@router.get("/user/get-current", response_model=CurrentUser001)
async def get_current(identity: MaybeIdentity) -> JSONResponse:
    # The login-state probe of 001's front end: "not logged in" is an answer here, not an error.
    if identity is None:
        return _response("未登录")
    return _response("已登录", username=identity.user_name, usertype=USERTYPE_001.get(identity.role, identity.role))


@router.get("/user/list", response_model=Envelope001[list[Expert001]])
async def list_experts(
    identity: Annotated[Identity, Depends(require_roles(*MANAGER_ROLES))], repo: Repo
) -> JSONResponse:
    experts = await repo.users(["tag"])
    return _response(
        [
            {"expert_id": u.id, "expert_name": u.user_name, "expert_area": u.area or ""}
            for u in experts
            if not u.is_banned
        ]
    )
