"""Accounts: registration in each document's flavour, login, password and email changes, admin
checks and bans."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from services.auth import ledger
from services.auth.email_codes import EmailCodes
from services.auth.errors import (
    EmailAlreadyBound,
    ExistingUsername,
    NeedAdminInvite,
    PasswordFormat,
    UserDoesNotExist,
    UsernameFormat,
    WrongInviteCode,
    WrongPassword,
)
from services.auth.models import User
from services.auth.passwords import hash_password, verify_password
from services.auth.repository import AuthRepository
from shared.errors import UserBanned

# 003: a user name is 4 to 24 characters, a password 6 to 20. Whitespace and control characters
# are refused so that names display and compare unambiguously.
USERNAME_003 = re.compile(r"^[^\s\x00-\x1f\x7f]{4,24}$")
PASSWORD_003 = re.compile(r"^[^\x00-\x1f\x7f]{6,20}$")
# 001 and 000 state no rules; these keep their clients working while refusing junk.
USERNAME_LOOSE = re.compile(r"^[^\s\x00-\x1f\x7f]{2,64}$")
PASSWORD_LOOSE = re.compile(r"^[^\x00-\x1f\x7f]{6,128}$")

_INVITE_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class NewAccount:
    user_name: str
    password: str
    role: str
    area: str | None = None
    email: str | None = None
    checked: bool = False
    invited_by: int | None = None


async def _unused_invite_code(repo: AuthRepository) -> str:
    while True:
        code = "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(8))
        if not await repo.invite_code_taken(code):
            return code


async def _new_user(repo: AuthRepository, account: NewAccount) -> User:
    return User(
        user_name=account.user_name,
        password_hash=await hash_password(account.password),
        user_type=account.role,
        area=account.area,
        email=account.email,
        invite_code=await _unused_invite_code(repo),
        invited_by=account.invited_by,
        # Requesters wait for an admin's check (003); everyone else is usable at once.
        is_checked=account.checked or account.role != "demand",
        score=0,
        tag_score=0,
        grow_value=0,
        credit_score=100,
        is_banned=False,
        face_bound=False,
    )


async def create_user(repo: AuthRepository, account: NewAccount) -> User:
    user = await _new_user(repo, account)
    try:
        await repo.add(user)
    except IntegrityError as exc:
        # Two registrations of one name raced past the existence check: the loser hears it here.
        raise ExistingUsername() from exc
    return user


async def ensure_new_name(repo: AuthRepository, user_name: str) -> None:
    if await repo.user_by_name(user_name) is not None:
        raise ExistingUsername()


def check_formats(user_name: str, password: str, *, strict: bool) -> None:
    if not (USERNAME_003 if strict else USERNAME_LOOSE).fullmatch(user_name):
        raise UsernameFormat()
    if not (PASSWORD_003 if strict else PASSWORD_LOOSE).fullmatch(password):
        raise PasswordFormat()


async def register_003(
    repo: AuthRepository,
    codes: EmailCodes,
    *,
    user_name: str,
    password: str,
    role: str,
    email: str,
    verifycode: str,
    invite_code: str | None,
    invite_reward: int,
) -> User:
    """In 003's documented order: duplicate name, formats, invite code, email, code."""
    await ensure_new_name(repo, user_name)
    check_formats(user_name, password, strict=True)
    inviter = None
    if invite_code:
        inviter = await repo.user_by_invite_code(invite_code)
        if inviter is None:
            raise WrongInviteCode()
    if role == "admin" and (inviter is None or inviter.user_type != "admin"):
        raise NeedAdminInvite()
    if await repo.user_by_email(email) is not None:
        raise EmailAlreadyBound()
    await codes.consume(email, verifycode)
    user = await create_user(
        repo, NewAccount(user_name, password, role, email=email, invited_by=inviter.id if inviter else None)
    )
    if inviter is not None and invite_reward > 0:
        await repo.lock_users([inviter.id])
        await ledger.transfer(
            repo,
            key=f"invite-reward:{user.id}",
            kind="invite_reward",
            source=ledger.REWARDS,
            target=inviter,
            amount=invite_reward,
        )
    return user


async def authenticate(repo: AuthRepository, user_name: str, password: str) -> User | None:
    user = await repo.user_by_name(user_name)
    ok = await verify_password(user.password_hash if user else None, password)
    return user if ok else None


def ensure_not_banned(user: User) -> None:
    if user.is_banned:
        raise UserBanned()


async def change_password(repo: AuthRepository, user_id: int, old: str, new: str) -> None:
    user = await existing_user(repo, user_id)
    if not await verify_password(user.password_hash, old):
        raise WrongPassword()
    await set_password(user, new)


def ensure_password_format(password: str) -> None:
    if not PASSWORD_003.fullmatch(password):
        raise PasswordFormat()


async def set_password(user: User, new: str) -> None:
    ensure_password_format(new)
    user.password_hash = await hash_password(new)


async def existing_user(repo: AuthRepository, user_id: int, *, lock: bool = False) -> User:
    user = await repo.user(user_id, lock=lock)
    if user is None:
        raise UserDoesNotExist()
    return user


async def shown_user(repo: AuthRepository, user_id: int) -> User:
    """`existing_user` to show, not to change (AuthRepository.shown_user)."""
    user = await repo.shown_user(user_id)
    if user is None:
        raise UserDoesNotExist()
    return user


async def reset_invite_code(repo: AuthRepository, user_id: int) -> str:
    user = await existing_user(repo, user_id)
    user.invite_code = await _unused_invite_code(repo)
    return user.invite_code


async def bootstrap_admin(repo: AuthRepository, user_name: str, password: str) -> bool:
    """Creates the configured admin if missing; returns whether it did. Auth replicas starting together
    all get here: the insert, not the look-up, decides which one makes it (a check then an insert let two
    pass, and the second's start-up failed on the unique name)."""
    if not user_name or not password or await repo.user_by_name(user_name) is not None:
        return False  # the usual start: no password hashed
    admin = await _new_user(repo, NewAccount(user_name, password, "admin", checked=True))
    return await repo.add_user_unless_named(admin)
