"""Face index sync without Redis: a replica that cannot subscribe to the change channel still catches
up with PostgreSQL at every periodic check (services/face/sync.py), on a database of its own."""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from services.face.index_registry import IndexRegistry
from services.face.repository import PUBLIC, FaceRepository
from services.face.sync import ChangeBus
from services.face.vector_index import IndexSettings
from shared.db import create_engine, create_sessionmaker
from shared.launcher import free_port
from shared.redis import Keys
from tests.helpers import eventually
from tests.shared.databases import fresh_backing


async def test_the_version_check_runs_while_redis_is_out_of_reach(backing):
    async with fresh_backing(backing, "face") as own:
        engine = create_engine(own.database_url, "face-test")
        unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.2)
        registry = IndexRegistry(create_sessionmaker(engine), IndexSettings())
        bus = ChangeBus(unreachable, Keys(own.namespace), registry, interval=0.2)
        try:
            await bus.start()
            assert not bus.subscribed
            # Another replica creates a collection; its message could not reach this one.
            async with create_sessionmaker(engine).begin() as session:
                row = await FaceRepository(session).ensure_collection(PUBLIC, 1, secrets.token_hex(4), None, None)

            async def loaded() -> bool:
                return registry.get(row.id) is not None

            await eventually(loaded, timeout=5, what="the collection loaded by the periodic check")
            assert not bus.subscribed
        finally:
            await bus.stop()
            await unreachable.aclose()
            await engine.dispose()
