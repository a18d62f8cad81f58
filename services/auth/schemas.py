"""Request bodies and the documented shapes of user data in responses.

What a response may show of a user is decided here and nowhere else: never a password hash, a code
or a face; another user's private fields (score, invite code, bank account, balance, email, VIP
expiry) only to that user, and to admins where 003's admin list documents them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.auth.membership import membership_level, vip_timestamp
from services.auth.models import Ad, ApiKey, User


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class Register003(Body):
    user_name: str
    password: str
    user_type: str
    invite_code: str | None = None
    email: str | None = None
    verifycode: str | None = None


class Register001(Body):
    username: str
    password: str
    user_area: str = ""


class Credentials001(Body):
    username: str
    password: str


class Login003(Body):
    user_name: str
    password: str


class Register000(Body):
    user_name: str
    password: str


class Login000(Body):
    """000 documents `username` but its example sends `user_name`: both work."""

    username: str | None = None
    user_name: str | None = None
    password: str

    @property
    def name(self) -> str:
        return self.username or self.user_name or ""


class ModifyPassword(Body):
    old_password: str
    new_password: str


class Amount(Body):
    amount: int = Field(strict=True, gt=0, le=10_000_000)


class BankAccountBody(Body):
    bank_account: str = Field(min_length=6, max_length=32, pattern=r"^[0-9]+$")


class EmailBody(Body):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ChangeEmail(Body):
    newemail: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    verifycode: str = Field(max_length=16)


class PasswordByEmail(Body):
    verifycode: str = Field(max_length=16)
    new_password: str


class VipPackage(Body):
    package_type: Literal["month", "season", "year"]


class FaceImage(Body):
    image: str = Field(min_length=1)


class PublishAd(Body):
    time: int = Field(strict=True, ge=1800, le=366 * 24 * 3600)
    type: str = Field(min_length=1, max_length=32)
    url: str = Field(min_length=1, max_length=1024)


class RenewAd(Body):
    time: int = Field(strict=True, gt=0, le=366 * 24 * 3600)


class NewApiKey(Body):
    name: str = Field(min_length=1, max_length=100)


class EscrowMove(Body):
    """A hold (user_id: the publisher) or a payout (user_id: the annotator)."""

    escrow_id: str = Field(min_length=1, max_length=128)
    user_id: int
    amount: int = Field(gt=0)
    idempotency_key: str = Field(min_length=8, max_length=200)


class EscrowRefund(Body):
    escrow_id: str = Field(min_length=1, max_length=128)
    amount: int | None = Field(None, gt=0, description="omitted: everything left")
    idempotency_key: str = Field(min_length=8, max_length=200)


def public_profile(user: User, now: datetime) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "user_name": user.user_name,
        "user_type": user.user_type,
        "membership_level": membership_level(user, now),
        "credit_score": user.credit_score,
        "grow_value": user.grow_value,
        "is_checked": user.is_checked,
        "is_banned": user.is_banned,
        "tag_score": user.tag_score,
    }


def own_profile(user: User, bank_balance: int, now: datetime) -> dict[str, Any]:
    return {
        **public_profile(user, now),
        "score": user.score,
        "invite_code": user.invite_code,
        "bank_account": user.bank_account or "",
        "account_balance": bank_balance,
        "vip_expire_time": vip_timestamp(user),
        "email": user.email or "",
    }


def admin_list_entry(user: User, now: datetime) -> dict[str, Any]:
    """003's get_all_users row as an admin sees it."""
    return {
        "user_id": user.id,
        "user_name": user.user_name,
        "score": user.score,
        "membership_level": membership_level(user, now),
        "credit_score": user.credit_score,
        "vip_expire_time": vip_timestamp(user),
        "is_checked": user.is_checked,
        "is_banned": user.is_banned,
        "user_type": user.user_type,
    }


def agent_list_entry(user: User, now: datetime) -> dict[str, Any]:
    """The same row as an agent sees it: other users' points and VIP dates are theirs alone."""
    entry = admin_list_entry(user, now)
    del entry["score"], entry["vip_expire_time"]
    return entry


def ad_entry(ad: Ad) -> dict[str, Any]:
    return {"src": ad.url, "expire_at": int(ad.expire_at.timestamp()),
            "publish_at": int(ad.publish_at.timestamp()), "ad_id": ad.id, "type": ad.ad_type}


def api_key_entry(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_by": key.created_by,
        "created_at": int(key.created_at.timestamp()),
        "revoked": key.revoked_at is not None,
    }
