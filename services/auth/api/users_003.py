"""Document 003's `/user/*` endpoints (and `POST /user/register`, shared with 001)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from services.auth import accounts, api_keys, wallet
from services.auth.api import users_001
from services.auth.api.deps import (
    Codes,
    Face,
    IdempotencyKey,
    MailerDep,
    ReadRepo,
    Repo,
    Sessions,
    Settings,
    clear_session_cookie,
    set_session_cookie,
)
from services.auth.errors import (
    EmailAlreadyBound,
    NoEmailBound,
    NoPermission19,
    SendCodeFailed,
    WrongCredentials,
)
from services.auth.schemas import (
    AdminListEntry,
    AgentListAnswer,
    AgentListEntry,
    Amount,
    BankAccountBody,
    ChangeEmail,
    EmailBody,
    FaceBound,
    FaceImage,
    FaceLoggedIn,
    InviteCode,
    LoggedIn003,
    Login003,
    ModifyPassword,
    OwnProfile,
    PasswordByEmail,
    PublicProfile,
    Register001,
    Register003,
    Registered003,
    VipPackage,
    admin_list_entry,
    agent_list_entry,
    own_profile,
    public_profile,
)
from shared.contract import Dialect
from shared.db import after_commit
from shared.edge import read_json_object, validated
from shared.envelopes import ok_003
from shared.identity import CurrentIdentity, Identity, require_roles
from shared.openapi import errors_in, json_body
from shared.params import Id
from shared.response_models import Empty, Envelope001, Envelope003

router = APIRouter(tags=["users (003)"])

# The admin routes of 003's user section document code 19 "no permission" for anyone else.
Admin19 = Annotated[Identity, Depends(require_roles("admin", error=NoPermission19))]


def _now() -> datetime:
    return datetime.now(UTC)


# 003's body is answered in 003's envelope, 001's in 001's.
REGISTER_DIALECTS = (Dialect.CROWD_003, Dialect.EXPERT_001)


@router.post(
    "/user/register",
    summary="Register (003 body: user_name...; 001 body: username...)",
    openapi_extra=json_body(Register003, Register001),
    responses=errors_in(400, *REGISTER_DIALECTS),
    response_model=Envelope003[Registered003] | Envelope001[str],
)
async def register(request: Request, repo: Repo, codes: Codes, settings: Settings) -> JSONResponse:
    body = await read_json_object(request)
    if "username" in body and "user_name" not in body:
        request.state.dialect = Dialect.EXPERT_001
        return await users_001.register_expert(repo, validated(Register001, body, Dialect.EXPERT_001))
    data = validated(Register003, body, Dialect.CROWD_003)
    user = await accounts.register_003(
        repo,
        codes,
        user_name=data.user_name,
        password=data.password,
        role=data.user_type,
        email=data.email,
        verifycode=data.verifycode,
        invite_code=data.invite_code,
        invite_reward=settings.invite_reward_points,
    )
    return ok_003({"user_id": user.id, "user_name": user.user_name, "invite_code": user.invite_code})


@router.post("/user/login", response_model=Envelope003[LoggedIn003])
async def login(body: Login003, repo: Repo, sessions: Sessions) -> JSONResponse:
    user = await accounts.authenticate(repo, body.user_name, body.password)
    if user is None:
        raise WrongCredentials()
    accounts.ensure_not_banned(user)
    token = await sessions.create(user.id, user.user_name, user.user_type)
    response = ok_003({"user_id": user.id, "user_name": user.user_name, "user_type": user.user_type})
    set_session_cookie(response, token, sessions.ttl)
    return response


@router.post("/user/logout", response_model=Envelope003[Empty])
async def logout(identity: CurrentIdentity, sessions: Sessions) -> JSONResponse:
    await sessions.revoke(identity)
    response = ok_003()
    clear_session_cookie(response)
    return response


@router.post("/user/modifypassword", response_model=Envelope003[Empty])
async def modify_password(
    body: ModifyPassword, identity: CurrentIdentity, repo: Repo, sessions: Sessions, request: Request
) -> JSONResponse:
    await accounts.change_password(repo, identity.user_id, body.old_password, body.new_password)
    after_commit(request, lambda: sessions.revoke_user(identity.user_id, keep=identity.credential))
    return ok_003()


@router.get(
    "/user/userinfo/{user_id}",
    response_model=Envelope003[OwnProfile | PublicProfile],
    description="Your own profile, or another user's public one.",
)
async def user_info(user_id: Id, identity: CurrentIdentity, repo: ReadRepo) -> JSONResponse:
    user = await accounts.shown_user(repo, user_id)
    if user.id != identity.user_id:
        return ok_003(public_profile(user, _now()))
    card = await repo.card(user.bank_account) if user.bank_account else None
    return ok_003(own_profile(user, wallet.bank_balance(card), _now()))


@router.post("/user/recharge", response_model=Envelope003[Empty])
async def recharge(body: Amount, identity: CurrentIdentity, repo: Repo, key: IdempotencyKey) -> JSONResponse:
    await wallet.recharge(repo, identity.user_id, body.amount, f"recharge:{identity.user_id}:{key}", _now())
    return ok_003()


@router.post("/user/withdraw", response_model=Envelope003[Empty])
async def withdraw(body: Amount, identity: CurrentIdentity, repo: Repo, key: IdempotencyKey) -> JSONResponse:
    await wallet.withdraw(repo, identity.user_id, body.amount, f"withdraw:{identity.user_id}:{key}")
    return ok_003()


@router.post("/user/modifybankaccount", response_model=Envelope003[Empty])
async def modify_bank_account(body: BankAccountBody, identity: CurrentIdentity, repo: Repo) -> JSONResponse:
    await wallet.bind_bank_account(repo, identity.user_id, body.bank_account)
    return ok_003()


async def _send_code(codes: Codes, mailer: MailerDep, settings: Settings, email: str) -> None:
    code = await codes.issue(email)
    try:
        await mailer.send_code(email, code, settings.email_code_ttl_seconds)
    except Exception as exc:  # any SMTP or network failure is 003's "send verify code failed"
        raise SendCodeFailed(data=type(exc).__name__) from exc


@router.post("/user/get_verifycode", response_model=Envelope003[Empty])
async def get_verify_code(
    body: EmailBody, repo: Repo, codes: Codes, mailer: MailerDep, settings: Settings
) -> JSONResponse:
    if await repo.user_by_email(body.email) is not None:
        raise EmailAlreadyBound()
    await _send_code(codes, mailer, settings, body.email)
    return ok_003(message="verify code sent")


@router.post("/user/verifycode_current_email", response_model=Envelope003[Empty])
async def verify_code_current_email(
    identity: CurrentIdentity, repo: Repo, codes: Codes, mailer: MailerDep, settings: Settings
) -> JSONResponse:
    user = await accounts.existing_user(repo, identity.user_id)
    if not user.email:
        raise NoEmailBound()
    await _send_code(codes, mailer, settings, user.email)
    return ok_003(message="verify code sent")


@router.post("/user/change_email", response_model=Envelope003[Empty])
async def change_email(body: ChangeEmail, identity: CurrentIdentity, repo: Repo, codes: Codes) -> JSONResponse:
    if await repo.user_by_email(body.newemail) is not None:
        raise EmailAlreadyBound()
    await codes.consume(body.newemail, body.verifycode, missing=SendCodeFailed)
    user = await accounts.existing_user(repo, identity.user_id, lock=True)
    user.email = body.newemail
    return ok_003(message="email changed")


@router.post("/user/modifypassword_by_email", response_model=Envelope003[Empty])
async def modify_password_by_email(
    body: PasswordByEmail,
    identity: CurrentIdentity,
    repo: Repo,
    codes: Codes,
    sessions: Sessions,
    request: Request,
) -> JSONResponse:
    user = await accounts.existing_user(repo, identity.user_id, lock=True)
    if not user.email:
        raise NoEmailBound()
    accounts.ensure_password_format(body.new_password)  # before the code is spent
    await codes.consume(user.email, body.verifycode, missing=SendCodeFailed)
    await accounts.set_password(user, body.new_password)
    after_commit(request, lambda: sessions.revoke_user(identity.user_id, keep=identity.credential))
    return ok_003(message="password changed")


@router.post("/user/reset_invite_code", response_model=Envelope003[InviteCode])
async def reset_invite_code(identity: CurrentIdentity, repo: Repo) -> JSONResponse:
    code = await accounts.reset_invite_code(repo, identity.user_id)
    return ok_003({"invite_code": code}, message="invite code reset")


@router.post("/user/getvip", response_model=Envelope003[Empty])
async def get_vip(body: VipPackage, identity: CurrentIdentity, repo: Repo, key: IdempotencyKey) -> JSONResponse:
    await wallet.buy_vip(repo, identity.user_id, body.package_type, f"vip:{identity.user_id}:{key}", _now())
    return ok_003(message="vip activated")


async def _set_banned(repo: Repo, user_id: int, banned: bool) -> None:
    user = await accounts.existing_user(repo, user_id, lock=True)
    user.is_banned = banned


@router.post("/user/ban_user/{user_id}", response_model=Envelope003[Empty])
async def ban_user(user_id: Id, admin: Admin19, repo: Repo, sessions: Sessions, request: Request) -> JSONResponse:
    await _set_banned(repo, user_id, True)
    keys = await api_keys.revoke_all_of(repo, user_id, _now())
    after_commit(request, lambda: sessions.revoke_user(user_id))
    after_commit(request, lambda: api_keys.withdraw(sessions, keys))
    return ok_003()


@router.post("/user/unban_user/{user_id}", response_model=Envelope003[Empty])
async def unban_user(user_id: Id, admin: Admin19, repo: Repo) -> JSONResponse:
    await _set_banned(repo, user_id, False)
    return ok_003(message="user unbanned")


@router.post("/user/check_user/{user_id}", response_model=Envelope003[str])
async def check_user(user_id: Id, admin: Admin19, repo: Repo) -> JSONResponse:
    user = await accounts.existing_user(repo, user_id, lock=True)
    user.is_checked = True
    return ok_003("user checked")


@router.get(
    "/user/get_all_users",
    response_model=Envelope003[list[AdminListEntry] | list[AgentListEntry]],
    description="Admins see every user (or the annotators); agents the annotators, without points or VIP dates.",
)
async def get_all_users(
    # The role dependency runs before the query is validated: others get 1006 whatever they send.
    identity: Annotated[Identity, Depends(require_roles("admin", "agent"))],
    repo: Repo,
    type: Annotated[str, Query(pattern="^(all|tag)$")] = "all",
) -> JSONResponse:
    now = _now()
    if identity.role == "admin":
        users = await repo.users(["tag"] if type == "tag" else None)
        return ok_003([admin_list_entry(u, now) for u in users])
    return ok_003([agent_list_entry(u, now) for u in await repo.users(["tag"])])


@router.get("/user/get_agent_list", response_model=AgentListAnswer)
async def get_agent_list(
    identity: Annotated[Identity, Depends(require_roles("demand", "admin"))], repo: Repo
) -> JSONResponse:
    agents = [public_profile(u, _now()) for u in await repo.users(["agent"]) if not u.is_banned]
    return JSONResponse({"code": "0", "message": "success", "data": {"agent_list": agents}})


@router.post("/user/face_recognition", response_model=FaceBound)
async def face_recognition(body: FaceImage, identity: CurrentIdentity, repo: Repo, face: Face) -> JSONResponse:
    user = await accounts.existing_user(repo, identity.user_id, lock=True)
    await face.enroll(user.id, body.image)
    user.face_bound = True
    return JSONResponse({"code": 0, "message": "success"})


@router.post(
    "/user/face_recognition_login",
    response_model=Envelope003[FaceLoggedIn],
    responses={
        401: {
            "description": "No enrolled face matches the photo (code 60)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error003"}}},
        }
    },
)
async def face_recognition_login(body: FaceImage, repo: Repo, face: Face, sessions: Sessions) -> Response:
    user = await accounts.existing_user(repo, await face.identify(body.image))
    accounts.ensure_not_banned(user)
    token = await sessions.create(user.id, user.user_name, user.user_type)
    data: dict[str, Any] = {
        "user_name": user.user_name,
        "user_type": user.user_type,
        "user_id": user.id,
        "invite_code": user.invite_code,
    }
    response = JSONResponse({"code": 0, "message": "success", "data": data})
    set_session_cookie(response, token, sessions.ttl)
    return response
