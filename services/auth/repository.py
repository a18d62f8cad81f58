"""All of the auth service's SQL.

Most of it goes through the ORM. The user reads other services and profile pages make on every
request (`shown_user`) are one plain statement on the session's asyncpg connection instead, which
asyncpg prepares once per connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import (
    Ad,
    Adjustment,
    ApiKey,
    BankCard,
    Escrow,
    LedgerEntry,
    User,
)

_USER_COLUMNS = tuple(column.name for column in User.__table__.columns)
_USER_BY_ID = f"SELECT {', '.join(_USER_COLUMNS)} FROM auth.users WHERE id = $1"


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *objects: object) -> None:
        self.session.add_all(objects)
        await self.session.flush()

    # users ---------------------------------------------------------------------------------------

    async def user(self, user_id: int, *, lock: bool = False) -> User | None:
        # By primary key: a statement SQLAlchemy builds once, where select() is rebuilt per call.
        return await self.session.get(User, user_id, with_for_update=True if lock else None)

    async def shown_user(self, user_id: int) -> User | None:
        """A user to show, not to change: built from one row without the ORM's loading, and not in
        the session (nothing set on it is saved)."""
        connection = (await (await self.session.connection()).get_raw_connection()).driver_connection
        assert connection is not None
        try:
            row = await connection.fetchrow(_USER_BY_ID, user_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DBAPIError(_USER_BY_ID, (user_id,), exc) from exc  # as the service's error handler expects
        return User(**dict(row)) if row is not None else None

    async def lock_users(self, user_ids: Sequence[int]) -> dict[int, User]:
        """Row locks taken in id order, so two transfers between the same users cannot deadlock."""
        query = select(User).where(User.id.in_(sorted(set(user_ids)))).order_by(User.id).with_for_update()
        return {u.id: u for u in (await self.session.execute(query)).scalars()}

    async def user_by_name(self, user_name: str) -> User | None:
        return (await self.session.execute(select(User).where(User.user_name == user_name))).scalar_one_or_none()

    async def user_by_email(self, email: str) -> User | None:
        return (await self.session.execute(select(User).where(User.email == email))).scalar_one_or_none()

    async def user_by_invite_code(self, code: str) -> User | None:
        query = select(User).where(User.invite_code == code)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def invite_code_taken(self, code: str) -> bool:
        return await self.user_by_invite_code(code) is not None

    async def users(self, roles: Sequence[str] | None = None) -> Sequence[User]:
        query = select(User).order_by(User.id)
        if roles:
            query = query.where(User.user_type.in_(roles))
        return (await self.session.execute(query)).scalars().all()

    async def users_page(self, role: str | None, after_id: int, limit: int) -> Sequence[User]:
        query = select(User).where(User.id > after_id).order_by(User.id).limit(limit)
        if role:
            query = query.where(User.user_type == role)
        return (await self.session.execute(query)).scalars().all()

    async def adjustment(self, idempotency_key: str) -> Adjustment | None:
        query = select(Adjustment).where(Adjustment.idempotency_key == idempotency_key)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def users_by_ids(self, user_ids: Sequence[int]) -> Sequence[User]:
        query = select(User).where(User.id.in_(user_ids)).order_by(User.id)
        return (await self.session.execute(query)).scalars().all()

    # bank cards ----------------------------------------------------------------------------------

    async def card(self, account: str, *, lock: bool = False) -> BankCard | None:
        query = select(BankCard).where(BankCard.account == account)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    # ledger --------------------------------------------------------------------------------------

    async def entry(self, idempotency_key: str) -> LedgerEntry | None:
        query = select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def escrow(self, escrow_id: str, *, lock: bool = False) -> Escrow | None:
        query = select(Escrow).where(Escrow.id == escrow_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    # api keys ------------------------------------------------------------------------------------

    async def api_keys(self) -> Sequence[ApiKey]:
        return (await self.session.execute(select(ApiKey).order_by(ApiKey.id))).scalars().all()

    async def api_key(self, key_id: int) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def live_api_keys_of(self, user_id: int) -> Sequence[ApiKey]:
        query = select(ApiKey).where(ApiKey.created_by == user_id, ApiKey.revoked_at.is_(None)).with_for_update()
        return (await self.session.execute(query)).scalars().all()

    # ads -----------------------------------------------------------------------------------------

    async def random_live_ads(self, ad_type: str | None, limit: int, now: datetime) -> Sequence[Ad]:
        query = select(Ad).where(Ad.expire_at > now).order_by(func.random()).limit(limit)
        if ad_type:
            query = query.where(Ad.ad_type == ad_type)
        return (await self.session.execute(query)).scalars().all()

    async def ads_of(self, owner_id: int) -> Sequence[Ad]:
        query = select(Ad).where(Ad.owner_id == owner_id).order_by(Ad.id)
        return (await self.session.execute(query)).scalars().all()

    async def ad(self, ad_id: int, *, lock: bool = False) -> Ad | None:
        query = select(Ad).where(Ad.id == ad_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()
