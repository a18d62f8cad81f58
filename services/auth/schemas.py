"""Request bodies and the documented shapes of user data in responses.

What a response may show of a user is decided here and nowhere else: never a password hash, a code
or a face; another user's private fields (score, invite code, bank account, balance, email, VIP
expiry) only to that user, and to admins where 003's admin list documents them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.auth.membership import membership_level, vip_timestamp
from services.auth.models import Ad, ApiKey, User
from shared.response_models import Envelope000User, Envelope001

# Outer bounds on free text. Names and passwords have tighter rules with documented codes (003's 2 and
# 3, checked in `accounts`); these bounds only keep absurd sizes from reaching them.
NAME_CHARS = 256
PASSWORD_CHARS = 256
CODE_CHARS = 16  # email verification codes (six digits)
INVITE_CHARS = 32
EMAIL_CHARS = 254
AREA_CHARS = 64
FACE_IMAGE_CHARS = 16 * 1024 * 1024  # a base64 photo
AD_TYPE_CHARS = 32
AD_URL_CHARS = 1024

Name = Annotated[str, Field(max_length=NAME_CHARS)]
Password = Annotated[str, Field(max_length=PASSWORD_CHARS)]


def _ad_url(value: str) -> str:
    """An ad's picture: an http(s) URL, or a path of the image bed (what `POST /picbed/` returns).
    Anything else (`javascript:`, `data:`, `//host`) would run or load where the ad is shown."""
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("url must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return value
    if not parts.scheme and not parts.netloc and value.startswith("/picbed/"):
        return value
    raise ValueError("url must be an http or https URL, or an image-bed path /picbed/...")


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class Register003(Body):
    """003's `POST /user/register` (a body with `user_name`; one with only `username` is 001's)."""

    user_name: Name
    password: Password
    user_type: Literal["demand", "tag", "admin", "agent"]
    invite_code: str | None = Field(None, max_length=INVITE_CHARS)
    email: str = Field(min_length=1, max_length=EMAIL_CHARS)
    verifycode: str = Field(min_length=1, max_length=CODE_CHARS)


class Register001(Body):
    """001's `POST /user/register`: an expert (a `tag` user) with the area they know."""

    username: Name
    password: Password
    user_area: str = Field("", max_length=AREA_CHARS)


class Credentials001(Body):
    username: Name
    password: Password


class Login003(Body):
    user_name: Name
    password: Password


class Register000(Body):
    user_name: Name
    password: Password


class Login000(Body):
    """000 documents `username` but its example sends `user_name`: both work."""

    username: Name | None = None
    user_name: Name | None = None
    password: Password

    @property
    def name(self) -> str:
        return self.username or self.user_name or ""


class ModifyPassword(Body):
    old_password: Password
    new_password: Password


class Amount(Body):
    amount: int = Field(strict=True, gt=0, le=10_000_000)


class BankAccountBody(Body):
    bank_account: str = Field(min_length=6, max_length=32, pattern=r"^[0-9]+$")


class EmailBody(Body):
    email: str = Field(min_length=3, max_length=EMAIL_CHARS, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ChangeEmail(Body):
    newemail: str = Field(min_length=3, max_length=EMAIL_CHARS, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    verifycode: str = Field(max_length=CODE_CHARS)


class PasswordByEmail(Body):
    verifycode: str = Field(max_length=CODE_CHARS)
    new_password: Password


class VipPackage(Body):
    package_type: Literal["month", "season", "year"]


class FaceImage(Body):
    image: str = Field(min_length=1, max_length=FACE_IMAGE_CHARS)


class PublishAd(Body):
    time: int = Field(strict=True, ge=1800, le=366 * 24 * 3600)
    type: str = Field(min_length=1, max_length=AD_TYPE_CHARS)
    url: Annotated[str, Field(min_length=1, max_length=AD_URL_CHARS), AfterValidator(_ad_url)]


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


# Answers ----------------------------------------------------------------------------------------
# What the routes answer inside their document's envelope (shared/response_models.py); the dicts the
# functions below build have exactly these fields (tests/openapi checks every route's answers).


class Registered003(BaseModel):
    user_id: int
    user_name: str
    invite_code: str


class LoggedIn003(BaseModel):
    user_id: int
    user_name: str
    user_type: str


class FaceLoggedIn(LoggedIn003):
    invite_code: str


class PublicProfile(BaseModel):
    user_id: int
    user_name: str
    user_type: str
    membership_level: int = Field(description="0 none, 1 silver, 2 gold, 3 diamond")
    credit_score: int
    grow_value: int
    is_checked: bool
    is_banned: bool
    tag_score: int


class OwnProfile(PublicProfile):
    score: int
    invite_code: str
    bank_account: str
    account_balance: int
    vip_expire_time: float = Field(description="Unix time; 0 when never a VIP")
    email: str


class AgentListEntry(BaseModel):
    user_id: int
    user_name: str
    membership_level: int
    credit_score: int
    is_checked: bool
    is_banned: bool
    user_type: str


class AdminListEntry(AgentListEntry):
    score: int
    vip_expire_time: float


class AgentList(BaseModel):
    agent_list: list[PublicProfile]


class AgentListAnswer(BaseModel):
    """get_agent_list's envelope: 003 documents its `code` as the text "0"."""

    code: str
    message: str
    data: AgentList


class FaceBound(BaseModel):
    """face_recognition's envelope: 003 documents it without `data`."""

    code: int
    message: str


class InviteCode(BaseModel):
    invite_code: str


class AdPublished(BaseModel):
    ad_id: int | None = Field(None, description="absent when the request was a retry (same Idempotency-Key)")


class AdEntry(BaseModel):
    src: str
    expire_at: int
    publish_at: int
    ad_id: int
    type: str


class ApiKeyEntry(BaseModel):
    id: int
    name: str
    prefix: str
    created_by: int
    created_at: int
    revoked: bool


class NewApiKeyEntry(ApiKeyEntry):
    key: str = Field(description="the key itself, shown this once")


class UserAnswer000(Envelope000User):
    user_name: str


class LoggedIn001(Envelope001[str]):
    session_id: str = Field(alias="Session-Id", description="the session token (also set as a cookie)")


class CurrentUser001(Envelope001[str]):
    """get-current: 已登录 with who, or 未登录 alone."""

    username: str | None = None
    usertype: str | None = Field(None, description="manager, expert or agent")


class Expert001(BaseModel):
    expert_id: int
    expert_name: str
    expert_area: str


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
    return {
        "src": ad.url,
        "expire_at": int(ad.expire_at.timestamp()),
        "publish_at": int(ad.publish_at.timestamp()),
        "ad_id": ad.id,
        "type": ad.ad_type,
    }


def api_key_entry(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_by": key.created_by,
        "created_at": int(key.created_at.timestamp()),
        "revoked": key.revoked_at is not None,
    }
