"""Async SQLAlchemy wired for one service's schema, and the unit of work of a request.

The request's session is committed in exactly one place: when the endpoint returns (the dependency
exits with scope="function", before the response is sent, so a failed commit still becomes an error
response). A route that only reads takes `ReadSession` instead: its statements go without BEGIN and
COMMIT. Work that must only happen once the data is durable (Redis writes, mails, calls to other
services) is registered with `after_commit` and dropped on rollback. `refused_input` tells a value
the database refused (the client's fault: a 4xx) from a real failure.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """The metadata of a declarative base whose tables all live in `schema`. A service declares its
    base with a class statement, which a type checker accepts as a base class (one a function returns
    is only known at run time):

        class Base(DeclarativeBase):
            metadata = schema_metadata("auth")
    """
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def asyncpg_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


# A pooled connection used moments ago is alive; one idle for longer is pinged before it is handed
# out (a database restart or an idle timeout may have closed it), and replaced if the ping fails.
# SQLAlchemy's pool_pre_ping pings on every checkout, which with asyncpg is three round trips
# (BEGIN, ";", ROLLBACK) added to every request.
PING_AFTER_IDLE_SECONDS = 10.0


# Connections kept open, and opened beyond them under load (closed again when handed back: a new one
# costs a few milliseconds of CPU, TCP, TLS negotiation, start-up and asyncpg's type set-up). Keeping
# 20 halved auth's CPU spent connecting at 32 requests at once, but every service and replica keeps
# what it once needed, and PostgreSQL's 100 connections are shared: with several platforms on one
# server (the test suites) they ran out. Hot paths hold a connection briefly instead.
POOL_SIZE = 10
POOL_OVERFLOW = 20


def create_engine(url: str, service: str) -> AsyncEngine:
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        connect_args={"server_settings": {"application_name": f"labelhive-{service}"}},
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
            try:
                dbapi_connection.ping()
            except Exception as exc:
                raise DisconnectionError("pooled connection is gone") from exc  # the pool connects anew


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


_AUTOCOMMIT: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """`engine` in autocommit (the same pool): each statement is a transaction of its own. Made once
    per engine: each `execution_options` call builds a new engine."""
    if engine not in _AUTOCOMMIT:
        _AUTOCOMMIT[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return _AUTOCOMMIT[engine]


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose every statement is a transaction of its own (`autocommit`). In READ COMMITTED
    each statement of a transaction reads its own snapshot anyway, so a read loses nothing, and saves
    the BEGIN and COMMIT round trips (and the time its connection is held)."""
    return async_sessionmaker(autocommit(engine), expire_on_commit=False)


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


async def _read_only(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.read_sessionmaker() as session:
        yield session


# For routes that only read: nothing it is given may be written through it (each flush would commit).
ReadSession = Annotated[AsyncSession, Depends(_read_only, scope="function")]


class RefusedInput(StrEnum):
    """Why the database refused a value a client sent."""

    OUT_OF_RANGE = "out_of_range"  # a number beyond its column (or beyond int64)
    NUL_CHARACTER = "nul_character"  # PostgreSQL text cannot hold U+0000
    TOO_LONG = "too_long"  # longer than its varchar column
    MALFORMED = "malformed"  # any other value the column's type refuses


_REFUSED_BY_SQLSTATE = {
    "22003": RefusedInput.OUT_OF_RANGE,
    "22021": RefusedInput.NUL_CHARACTER,  # character_not_in_repertoire (0x00 in UTF-8 text)
    "22P05": RefusedInput.NUL_CHARACTER,  # untranslatable_character (\u0000 in jsonb)
    "22001": RefusedInput.TOO_LONG,
}


def refused_input(error: DBAPIError) -> RefusedInput | None:
    """The input's fault in `error`, or None when the failure is not the input's (a bug, an outage).

    PostgreSQL refuses bad data with SQLSTATE class 22 ("data exception"); asyncpg refuses a number
    that does not fit its parameter's type before sending it, with the same class (its `DataError`,
    caused by an OverflowError) or, for some types, an `InterfaceError` that is also a ValueError.
    """
    cause: BaseException | None = error.orig
    while cause is not None:
        if isinstance(cause, asyncpg.PostgresError):
            sqlstate = str(getattr(cause, "sqlstate", "") or "")
            if not sqlstate.startswith("22"):
                return None
            if isinstance(cause.__cause__, OverflowError):  # asyncpg could not encode the argument
                return RefusedInput.OUT_OF_RANGE
            return _REFUSED_BY_SQLSTATE.get(sqlstate, RefusedInput.MALFORMED)
        if isinstance(cause, asyncpg.InterfaceError) and isinstance(cause, ValueError):
            return RefusedInput.OUT_OF_RANGE if "out of" in str(cause) else RefusedInput.MALFORMED
        cause = cause.__cause__
    return None


def database_unavailable(error: DBAPIError) -> bool:
    """Whether `error` says the database is out of reach (down, restarting, the connection cut), not
    that a statement was wrong: the answer is then a 503, like any service that is really down."""
    if error.connection_invalidated:
        return True
    cause: BaseException | None = error.orig
    while cause is not None:
        if isinstance(
            cause,
            (
                OSError,
                asyncpg.PostgresConnectionError,
                asyncpg.ConnectionDoesNotExistError,
                asyncpg.CannotConnectNowError,
            ),
        ):
            return True
        if isinstance(cause, asyncpg.InterfaceError) and not isinstance(cause, ValueError):
            return True  # e.g. "connection is closed"
        cause = cause.__cause__
    return False
