"""All of the stats service's SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

import asyncpg
from sqlalchemy import Date, cast, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.stats.models import Record
from shared.db import autocommit, database_unavailable


class RecordRow(NamedTuple):
    """A detection record as `insert_records` stores it: the columns of `_INSERT_RECORDS`, in order."""

    record_id: str
    name: str
    created_at: datetime
    label: str
    num: int
    dice: float
    processing_time: float
    result_image: bytes


# One statement whatever the number of records (one array per column), so asyncpg prepares it once
# per connection and nothing is compiled per batch. Assigning text to a varchar column checks its
# length as a VALUES list would: a record too long for it is refused, not cut.
_INSERT_RECORDS = (
    "INSERT INTO stats.records (record_id, name, created_at, label, num, dice, processing_time, result_image) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int4[], $6::float8[], "
    "$7::float8[], $8::bytea[]) "
    "ON CONFLICT (record_id) DO NOTHING"
)


@dataclass(frozen=True)
class SearchFilter:
    name: str | None = None
    num: int | None = None
    start: datetime | None = None
    end: datetime | None = None  # exclusive


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_records(self, rows: Sequence[RecordRow]) -> int:
        """Inserts new records; one already stored (a redelivery) is skipped. Returns how many were new.

        Committed when it returns: the one statement is a transaction of its own on a pooled connection in
        autocommit, not in the session's (BEGIN and COMMIT would be two more round trips), so all of
        `rows` or none are stored. Errors are SQLAlchemy's, as `refused_input` expects."""
        if not rows:
            return 0
        engine = self.session.bind
        assert isinstance(engine, AsyncEngine)
        async with autocommit(engine).connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            try:
                status = await driver.execute(_INSERT_RECORDS, *(list(column) for column in zip(*rows)))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                error = DBAPIError(_INSERT_RECORDS, None, exc)
                if database_unavailable(error) or driver.is_closed():
                    await connection.invalidate()  # SQLAlchemy did not see it fail, and would pool it again
                raise error from exc
        return int(status.rsplit(" ", 1)[1])  # "INSERT 0 <rows>"

    async def recent(self, limit: int) -> Sequence[Record]:
        query = select(Record).order_by(Record.created_at.desc(), Record.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def per_day(self, start: datetime, end: datetime) -> dict[date, tuple[int, int]]:
        day = cast(func.timezone("UTC", Record.created_at), Date)
        query = (
            select(day, func.count(), func.coalesce(func.sum(Record.num), 0))
            .where(Record.created_at >= start, Record.created_at < end)
            .group_by(day)
        )
        return {d: (int(c), int(n)) for d, c, n in (await self.session.execute(query)).all()}

    def _filtered(self, query, flt: SearchFilter):  # type: ignore[no-untyped-def]
        if flt.name:
            escaped = flt.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Record.name.ilike(f"%{escaped}%", escape="\\"))
        if flt.num is not None:
            query = query.where(Record.num == flt.num)
        if flt.start is not None:
            query = query.where(Record.created_at >= flt.start)
        if flt.end is not None:
            query = query.where(Record.created_at < flt.end)
        return query

    async def search(self, flt: SearchFilter, limit: int, offset: int) -> tuple[int, Sequence[Record]]:
        total = (await self.session.execute(self._filtered(select(func.count()).select_from(Record), flt))).scalar_one()
        query = self._filtered(select(Record), flt).order_by(Record.created_at.desc(), Record.id.desc())
        rows = (await self.session.execute(query.limit(limit).offset(offset))).scalars().all()
        return int(total), rows

    async def figure(self, fig_id: int) -> bytes | None:
        query = select(Record.result_image).where(Record.id == fig_id)
        return (await self.session.execute(query)).scalar_one_or_none()
