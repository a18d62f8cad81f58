"""All of the auth service's SQL.

Most of it goes through the ORM. The reads made on every request of a hot route (`shown_user`, for
other services and profile pages; `random_live_ads`, for every page that shows an ad) are one plain
statement on the session's asyncpg connection instead, which asyncpg prepares once per connection,
and give objects that are not in the session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
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
_AD_COLUMNS = ", ".join(column.name for column in Ad.__table__.columns)
_RANDOM_LIVE_ADS = f"SELECT {_AD_COLUMNS} FROM auth.ads WHERE expire_at > $1 ORDER BY random() LIMIT $2"
_RANDOM_LIVE_ADS_OF_TYPE = (
    f"SELECT {_AD_COLUMNS} FROM auth.ads WHERE expire_at > $1 AND ad_type = $3 ORDER BY random() LIMIT $2"
)


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

    async def _fetch(self, statement: str, *args: object) -> list[asyncpg.Record]:
        """The rows of `statement` on the session's asyncpg connection; errors are SQLAlchemy's, as the
        service's error handler expects."""
        connection = (await (await self.session.connection()).get_raw_connection()).driver_connection
        assert connection is not None
        try:
            return list(await connection.fetch(statement, *args))
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DBAPIError(statement, args, exc) from exc

    async def shown_user(self, user_id: int) -> User | None:
        """A user to show, not to change: built from one row without the ORM's loading, and not in
        the session (nothing set on it is saved)."""
        rows = await self._fetch(_USER_BY_ID, user_id)
        return User(**dict(rows[0])) if rows else None

    async def lock_users(self, user_ids: Sequence[int]) -> dict[int, User]:
        """Row locks taken in id order, so two transfers between the same users cannot deadlock."""
        query = select(User).where(User.id.in_(sorted(set(user_ids)))).order_by(User.id).with_for_update()
        return {u.id: u for u in (await self.session.execute(query)).scalars()}

    async def add_user_unless_named(self, user: User) -> bool:
        """Inserts `user` unless a user of its name exists, in one statement: where another transaction is
        inserting the name, it waits for that one and then skips. Returns whether it inserted."""
        values = {column.name: getattr(user, column.name) for column in User.__table__.columns}
        statement = (
            insert(User)
            .values({name: value for name, value in values.items() if value is not None})
            .on_conflict_do_nothing(index_elements=[User.user_name])
            .returning(User.id)
        )
        return (await self.session.execute(statement)).first() is not None

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

    async def random_live_ads(self, ad_type: str | None, limit: int, now: datetime) -> list[Ad]:
        """Up to `limit` ads not expired at `now`, drawn at random (not in the session)."""
        if ad_type:
            rows = await self._fetch(_RANDOM_LIVE_ADS_OF_TYPE, now, limit, ad_type)
        else:
            rows = await self._fetch(_RANDOM_LIVE_ADS, now, limit)
        return [Ad(**dict(row)) for row in rows]

    async def ads_of(self, owner_id: int) -> Sequence[Ad]:
        query = select(Ad).where(Ad.owner_id == owner_id).order_by(Ad.id)
        return (await self.session.execute(query)).scalars().all()

    async def ad(self, ad_id: int, *, lock: bool = False) -> Ad | None:
        query = select(Ad).where(Ad.id == ad_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()
