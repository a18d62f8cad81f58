"""All of the stats service's SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Date, cast, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.stats.models import Record


@dataclass(frozen=True)
class SearchFilter:
    name: str | None = None
    num: int | None = None
    start: datetime | None = None
    end: datetime | None = None  # exclusive


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_records(self, rows: list[dict[str, object]]) -> int:
        """Inserts new records; one already stored (a redelivery) is skipped. Returns how many were new."""
        if not rows:
            return 0
        statement = insert(Record).values(rows).on_conflict_do_nothing(index_elements=["record_id"])
        result = await self.session.execute(statement.returning(Record.id))
        return len(result.all())

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
