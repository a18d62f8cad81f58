"""Async SQLAlchemy wired for one service's schema, and the unit of work of a request.

The request's session is committed in exactly one place: when the endpoint returns (the dependency
exits with scope="function", before the response is sent, so a failed commit still becomes an error
response). Work that must only happen once the data is durable (Redis writes, mails, calls to other
services) is registered with `after_commit` and dropped on rollback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def declarative_base(schema: str) -> type[DeclarativeBase]:
    """A declarative base whose tables all live in `schema`."""

    class Base(DeclarativeBase):
        metadata = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)

    return Base


def asyncpg_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def create_engine(url: str, service: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": f"labelhive-{service}"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


AfterCommit = Callable[[], Awaitable[object]]


def after_commit(request: Request, action: AfterCommit) -> None:
    request.state.after_commit.append(action)


async def _unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    request.state.after_commit = []
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            request.state.after_commit.clear()
            raise
    for action in request.state.after_commit:
        await action()


DbSession = Annotated[AsyncSession, Depends(_unit_of_work, scope="function")]
