"""The stats service's stream consumer as replicas run it, on a database and stream of their own (the
platform's stats service would otherwise consume them too): two consumers of one group store each
record once between them, a record a dead consumer read is claimed and stored by a live one, and bad
records or a vanished group do not stop the flow."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.stats.consumer import Entry, RecordConsumer
from services.stats.models import Record
from services.stats.repository import RecordRow, StatsRepository
from shared.db import create_engine, create_sessionmaker
from shared.detections import DetectionRecord
from shared.redis import Keys, create_redis
from tests.helpers import eventually
from tests.shared.databases import fresh_backing

GROUP = "stats"


@dataclass
class Stream:
    redis: Redis
    key: str
    sessionmaker: async_sessionmaker[AsyncSession]
    database_url: str


@pytest_asyncio.fixture(loop_scope="session")
async def stats_db(backing) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Keys, str]]:
    async with fresh_backing(backing, "stats") as own:
        engine = create_engine(own.database_url, "stats-test")
        try:
            yield create_sessionmaker(engine), Keys(own.namespace), own.database_url
        finally:
            await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def stream(stats_db, backing) -> AsyncIterator[Stream]:
    sessionmaker, keys, database_url = stats_db
    redis = create_redis(backing.redis_url)
    try:
        yield Stream(redis, keys.of("detections", secrets.token_hex(4)), sessionmaker, database_url)
    finally:
        await redis.aclose()


class CountingConsumer(RecordConsumer):
    """Remembers the record ids it stored."""

    def __init__(self, stream: Stream, name: str, claim_idle_ms: int = 30_000) -> None:
        super().__init__(stream.redis, stream.key, GROUP, stream.sessionmaker, 10, claim_idle_ms)
        self.name = name  # replicas differ by host name; these two share a process
        self.stored: list[str] = []

    async def _store(self, entries: list[Entry], gone: list[str]) -> None:
        await asyncio.sleep(0.002)  # storing takes a moment: the other consumer reads meanwhile
        await super()._store(entries, gone)
        self.stored += [fields["record_id"] for _, fields in entries]


def _record(tag: str, number: int, record_id: str | None = None) -> dict[str, str]:
    return DetectionRecord(
        record_id or f"{tag}-{number}",
        f"{tag}-{number}.jpg",
        datetime.now(UTC).isoformat(),
        ["patches"],
        1,
        0.5,
        0.01,
        base64.b64encode(b"\xff\xd8 not really a jpeg").decode(),
    ).to_fields()


async def _publish(stream: Stream, tag: str, count: int) -> list[str]:
    for number in range(count):
        await stream.redis.xadd(stream.key, _record(tag, number))
    return [f"{tag}-{number}" for number in range(count)]


async def _stored(stream: Stream, tag: str) -> int:
    async with stream.sessionmaker() as session:
        query = select(func.count()).select_from(Record).where(Record.record_id.startswith(f"{tag}-"))
        return int((await session.execute(query)).scalar_one())


async def _running(*consumers: RecordConsumer) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(c.run()) for c in consumers]


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _pending(stream: Stream) -> int:
    return int((await stream.redis.xpending(stream.key, GROUP))["pending"])


async def test_two_consumers_store_each_record_once(stream):
    tag = secrets.token_hex(4)
    first, second = CountingConsumer(stream, "replica-a"), CountingConsumer(stream, "replica-b")
    await first.ensure_group()
    ids = await _publish(stream, tag, 200)
    tasks = await _running(first, second)
    try:

        async def all_stored() -> bool:
            return await _stored(stream, tag) == len(ids)

        await eventually(all_stored, timeout=30, what="every record stored")
        await asyncio.sleep(0.2)
    finally:
        await _stop(tasks)
    together = Counter(first.stored + second.stored)
    assert set(together) == set(ids) and set(together.values()) == {1}
    assert first.stored and second.stored, "the replicas shared the stream"
    assert await _pending(stream) == 0


async def test_a_record_read_by_a_dead_consumer_is_claimed(stream):
    tag = secrets.token_hex(4)
    dead = CountingConsumer(stream, "replica-dead")
    await dead.ensure_group()
    ids = await _publish(stream, tag, 5)
    entries, _ = await dead._read(">", None)  # read, then the replica died before storing them
    assert [fields["record_id"] for _, fields in entries] == ids
    assert await _pending(stream) == 5

    live = CountingConsumer(stream, "replica-live", claim_idle_ms=300)
    tasks = await _running(live)
    try:

        async def claimed() -> bool:
            return await _stored(stream, tag) == 5

        await eventually(claimed, timeout=10, what="the dead consumer's records stored")
    finally:
        await _stop(tasks)
    assert sorted(live.stored) == sorted(ids)
    assert await _pending(stream) == 0
    # The dead one's name lingers in the group until it has been idle long enough.
    assert "replica-dead" in await live.forget_dead_consumers(idle_ms=200)
    names = {c["name"] for c in await stream.redis.xinfo_consumers(stream.key, GROUP)}
    assert "replica-dead" not in names and "replica-live" in names


async def test_bad_records_and_a_vanished_group_do_not_stop_the_flow(stream):
    tag = secrets.token_hex(4)
    consumer = CountingConsumer(stream, "replica-c")
    await consumer.ensure_group()
    await stream.redis.xadd(stream.key, _record(tag, 0))
    await stream.redis.xadd(stream.key, _record(tag, 1, record_id=f"{tag}-" + "x" * 80))  # too long to store
    await stream.redis.xadd(stream.key, {"record_id": f"{tag}-2"})  # malformed
    await stream.redis.xadd(stream.key, _record(tag, 3))
    tasks = await _running(consumer)
    try:

        async def good_ones_stored() -> bool:
            return await _stored(stream, tag) == 2 and await _pending(stream) == 0

        await eventually(good_ones_stored, timeout=10, what="the good records stored, the bad ones dropped")

        await stream.redis.delete(stream.key)  # Redis lost the stream and its group
        await stream.redis.xadd(stream.key, _record(tag, 4))

        async def after_the_loss() -> bool:
            return await _stored(stream, tag) == 3

        await eventually(after_the_loss, timeout=10, what="a record published after the group vanished")
    finally:
        await _stop(tasks)
    async with stream.sessionmaker() as session:
        stored = await session.execute(select(Record.record_id).where(Record.record_id.startswith(f"{tag}-")))
        assert sorted(record_id for (record_id,) in stored) == [f"{tag}-0", f"{tag}-3", f"{tag}-4"]


async def test_a_record_delivered_again_is_stored_once(stream):
    """Redelivered within one batch or in a later one: one row, and only the new ones counted."""
    tag = secrets.token_hex(4)
    first, second = (
        RecordRow(f"{tag}-{n}", f"{tag}-{n}.jpg", datetime.now(UTC), "patches", 1, 0.5, 0.01, b"jpeg") for n in range(2)
    )
    async with stream.sessionmaker() as session:
        assert await StatsRepository(session).insert_records([first, first, second, first]) == 2
        assert await StatsRepository(session).insert_records([second]) == 0
    assert await _stored(stream, tag) == 2


async def _end_connections(stream: Stream) -> int:
    """Ends the test engine's connections the way a database restart does; returns how many it ended."""
    admin = await asyncpg.connect(stream.database_url)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'labelhive-stats-test'"
            )
        )
    finally:
        await admin.close()


async def test_a_connection_the_database_ended_is_replaced(stream):
    """The store on a connection PostgreSQL ended fails and acknowledges nothing; the next store gets a
    connection that works instead of the dead one back from the pool."""
    tag = secrets.token_hex(4)
    consumer = CountingConsumer(stream, "replica-d")
    await consumer.ensure_group()
    await _publish(stream, tag, 2)
    entries, _ = await consumer._read(">", None)
    await consumer._store(entries[:1], [])  # the pool now holds the connection that stored it
    assert await _end_connections(stream) >= 1

    with pytest.raises(DBAPIError):
        await consumer._store(entries[1:], [])
    assert await _pending(stream) == 1
    await consumer._store(entries[1:], [])
    assert await _stored(stream, tag) == 2 and await _pending(stream) == 0


async def test_a_dead_consumers_records_are_claimed_during_a_steady_flow(stream):
    """Claims are looked for on a schedule, not only when the stream is quiet: a flow of new records that
    never lets the live consumer's read wait does not keep the dead one's records from it."""
    tag = secrets.token_hex(4)
    dead = CountingConsumer(stream, "replica-dead-2")
    await dead.ensure_group()
    left = await _publish(stream, f"{tag}-left", 3)
    await dead._read(">", None)

    live = CountingConsumer(stream, "replica-busy", claim_idle_ms=300)
    tasks = await _running(live)
    try:
        for number in range(150):  # 3 s of records, one every 20 ms
            await stream.redis.xadd(stream.key, _record(f"{tag}-flow", number))
            await asyncio.sleep(0.02)
            if set(left) <= set(live.stored):
                break
        assert set(left) <= set(live.stored), "the dead consumer's records were claimed while the flow went on"
    finally:
        await _stop(tasks)
