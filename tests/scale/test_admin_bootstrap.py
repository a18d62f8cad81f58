"""Auth replicas starting together each make sure the configured admin exists (services/auth/accounts.py
bootstrap_admin): exactly one makes it, and none fails its start-up. A look-up then an insert let two
replicas both find no admin, and the second insert failed on the unique name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.auth.accounts import bootstrap_admin
from services.auth.repository import AuthRepository
from shared.db import create_engine, create_sessionmaker
from tests.helpers import eventually
from tests.shared.databases import fresh_backing

ADMIN, PASSWORD = "first_admin", "pass-word-1"


@pytest_asyncio.fixture(loop_scope="session")
async def auth_db(backing) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], asyncpg.Connection]]:
    """A database of its own with the auth schema (the platform's auth made its admin long ago)."""
    async with fresh_backing(backing, "auth") as own:
        engine = create_engine(own.database_url, "auth-test")
        watcher = await asyncpg.connect(own.database_url)
        try:
            yield create_sessionmaker(engine), watcher
        finally:
            await watcher.close()
            await engine.dispose()


async def _start_up(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    """What an auth replica's start-up does about the admin (services/auth/app.py)."""
    async with sessionmaker.begin() as session:
        return await bootstrap_admin(AuthRepository(session), ADMIN, PASSWORD)


async def test_two_replicas_starting_together_make_one_admin(auth_db):
    sessionmaker, watcher = auth_db

    async def second_waits_on_the_first() -> bool:
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO auth.users%'"
        )
        return bool(waiting)

    async with sessionmaker.begin() as first:
        assert await bootstrap_admin(AuthRepository(first), ADMIN, PASSWORD)
        # The second replica looks before the first commits, finds no admin, and inserts it too: its insert
        # waits for the first's transaction.
        second = asyncio.create_task(_start_up(sessionmaker))
        await eventually(second_waits_on_the_first, timeout=10, interval=0.05, what="the second insert waiting")
    assert await second is False  # it learns there is one now, and its start-up goes on

    assert await watcher.fetchval("SELECT count(*) FROM auth.users WHERE user_name = $1", ADMIN) == 1
    assert await _start_up(sessionmaker) is False  # a later start finds it
