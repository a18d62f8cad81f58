"""The outbox drainer (shared/outbox.py) on a table of its own in a real PostgreSQL database: replicas
share the rows without sending one twice, and each outcome is recorded as its docstring says."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from sqlalchemy import DateTime, Integer, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import asyncpg_url, schema_metadata
from shared.outbox import Delivery, OutboxDrainer, Outcome
from tests.helpers import eventually
from tests.shared.databases import fresh_backing


class Base(DeclarativeBase):
    metadata = schema_metadata("outbox_test")


class Parcel(Base):
    __tablename__ = "parcels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    peer: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(String(500))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ParcelDrainer(OutboxDrainer[Parcel]):
    """Sends by counting: `answers` scripts what a parcel's peer answers (DONE when not scripted)."""

    name = "parcels"

    def __init__(self, sessionmaker, *, interval: float = 0.05, batch: int = 10, max_backoff: float = 30.0) -> None:
        super().__init__(sessionmaker, interval=interval, batch=batch, max_backoff=max_backoff)
        self.sent: Counter[int] = Counter()
        self.answers: dict[int, Delivery] = {}

    async def claim(self, session: AsyncSession, now: datetime, limit: int) -> list[Parcel]:
        query = (
            select(Parcel)
            .where(Parcel.status == "pending", Parcel.next_attempt_at <= now)
            .order_by(Parcel.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await session.execute(query)).scalars())

    def destination(self, row: Parcel) -> str:
        return row.peer

    async def send(self, row: Parcel) -> Delivery:
        await asyncio.sleep(random.uniform(0, 0.004))  # a peer takes a moment: the other replica runs meanwhile
        self.sent[row.id] += 1
        return self.answers.get(row.id, Delivery(Outcome.DONE))

    def mark_done(self, row: Parcel, now: datetime) -> None:
        row.status, row.done_at = "done", now

    def mark_refused(self, row: Parcel) -> None:
        row.status = "refused"


@pytest_asyncio.fixture(loop_scope="session")
async def sessionmaker(backing) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with fresh_backing(backing) as own:
        engine = create_async_engine(asyncpg_url(own.database_url))
        async with engine.begin() as connection:
            await connection.execute(text("CREATE SCHEMA outbox_test"))
            await connection.run_sync(Base.metadata.create_all)
        try:
            yield async_sessionmaker(engine, expire_on_commit=False)
        finally:
            await engine.dispose()


async def _add(sessionmaker, peers: list[str]) -> list[int]:
    async with sessionmaker.begin() as session:
        rows = [Parcel(peer=peer) for peer in peers]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def _rows(sessionmaker) -> dict[int, Parcel]:
    async with sessionmaker() as session:
        return {row.id: row for row in (await session.execute(select(Parcel))).scalars()}


async def test_two_drainers_send_each_row_exactly_once(sessionmaker):
    ids = await _add(sessionmaker, ["auth"] * 300)
    first, second = ParcelDrainer(sessionmaker), ParcelDrainer(sessionmaker)
    workers = [asyncio.create_task(d.run()) for d in (first, second)]
    try:

        async def all_done() -> bool:
            return all(row.status == "done" for row in (await _rows(sessionmaker)).values())

        await eventually(all_done, timeout=60, what="every parcel done")
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    together = first.sent + second.sent
    assert set(together) == set(ids)
    assert max(together.values()) == 1, [i for i, n in together.items() if n > 1]
    # They shared the work rather than one waiting for the other's locks.
    assert first.sent and second.sent, (len(first.sent), len(second.sent))


async def test_outcomes_are_recorded_and_an_unreachable_peer_waits(sessionmaker):
    down, also_down, ok, refused, later, elsewhere = await _add(
        sessionmaker, ["face", "face", "auth", "auth", "auth", "dataset"]
    )
    drainer = ParcelDrainer(sessionmaker, interval=2.0, max_backoff=30.0)
    drainer.answers = {
        down: Delivery(Outcome.UNREACHABLE, "connection refused"),
        refused: Delivery(Outcome.REFUSED, "HTTP 422: no face"),
        later: Delivery(Outcome.RETRY, "HTTP 404: no such endpoint yet", max_backoff=600.0),
    }
    before = datetime.now(UTC)
    assert await drainer.drain_once()  # settled some: worth another round at once
    rows = await _rows(sessionmaker)

    assert rows[down].status == "pending" and rows[down].attempts == 1
    assert rows[down].last_error == "connection refused"
    assert before + timedelta(seconds=1.9) <= rows[down].next_attempt_at <= datetime.now(UTC) + timedelta(seconds=2)
    # The face service did not answer: its other parcel was not even tried, and keeps its place.
    assert also_down not in drainer.sent
    assert rows[also_down].attempts == 0 and rows[also_down].next_attempt_at <= before
    assert rows[ok].status == "done" and rows[ok].done_at is not None and rows[ok].last_error is None
    assert rows[refused].status == "refused" and rows[refused].last_error == "HTTP 422: no face"
    assert rows[later].status == "pending" and rows[later].attempts == 1
    assert rows[elsewhere].status == "done"  # another peer's parcels go on

    # The next round: also_down is tried now; the retried ones wait for their back-off, doubling.
    drainer.answers[also_down] = Delivery(Outcome.RETRY, "HTTP 503")
    assert not await drainer.drain_once()  # nothing settled: the loop would sleep
    assert drainer.sent[down] == 1 and drainer.sent[also_down] == 1
    retry_at = rows[later].next_attempt_at
    for attempt in range(2, 11):
        await drainer.drain_once(now=retry_at)
        row = (await _rows(sessionmaker))[later]
        assert row.attempts == attempt
        waited = (row.next_attempt_at - datetime.now(UTC)).total_seconds()
        # 2 s doubling per attempt, capped by the parcel's own 600 s rather than the drainer's 30 s.
        assert abs(waited - min(600.0, 2.0 * 2 ** (attempt - 1))) < 1.0, (attempt, waited)
        retry_at = row.next_attempt_at
    # `down` came due in those rounds too, with the drainer's own cap.
    row = (await _rows(sessionmaker))[down]
    waited = (row.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert row.attempts >= 6 and abs(waited - 30.0) < 1.0, (row.attempts, waited)


async def test_a_poke_drains_at_once(sessionmaker):
    drainer = ParcelDrainer(sessionmaker, interval=3600)
    worker = asyncio.create_task(drainer.run())
    try:
        await asyncio.sleep(0.2)  # its first round found nothing: it sleeps for an hour
        (parcel,) = await _add(sessionmaker, ["auth"])
        drainer.poke()

        async def done() -> bool:
            return (await _rows(sessionmaker))[parcel].status == "done"

        await eventually(done, timeout=5, what="the poked parcel done")
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
