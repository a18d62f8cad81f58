"""A throw-away platform: a database and a Redis namespace of its own, every service and the gateway on
free ports, and everything it made removed on exit. The test suite (tests/conftest.py) and the benchmarks
(bench/common.py) both start theirs here; `make run` (shared/launcher.py) is the lasting one.

    async with throwaway_backing(admin_url, redis_url, "bench") as backing:
        async with throwaway_platform(backing, extra_env=env, log_dir=logs) as platform:
            ...  # talk to platform.gateway_url

The database is dropped (with FORCE, which also ends connections a process stopped too slowly left
behind) and the namespace's Redis keys are deleted when the backing's `async with` exits, also on errors.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis

from shared.launcher import Platform, free_port
from shared.settings import SERVICES


@dataclass(frozen=True)
class Backing:
    """What a throw-away platform runs against: its own database and its own Redis namespace."""

    database_url: str
    redis_url: str
    namespace: str


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=10)
    try:
        try:  # PostgreSQL 13+
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except asyncpg.PostgresSyntaxError:
            await connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await connection.close()


async def delete_namespace(redis_url: str, namespace: str) -> int:
    """Deletes every key `<namespace>:*` (SCAN + DEL, never KEYS); returns how many went."""
    if not namespace or any(c in namespace for c in "*?[]\\:"):
        raise ValueError(f"refusing to delete keys of namespace {namespace!r}")
    redis = Redis.from_url(redis_url, socket_timeout=10)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await redis.delete(*batch)
                batch = []
        if batch:
            deleted += await redis.delete(*batch)
    finally:
        await redis.aclose()
    return deleted


@contextlib.asynccontextmanager
async def throwaway_backing(admin_url: str, redis_url: str, prefix: str) -> AsyncIterator[Backing]:
    """A new, empty database `<prefix>_<hex>` on the server of `admin_url` (a superuser's URL) and the
    Redis namespace of the same name; the database is dropped and the namespace's keys deleted on exit."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(admin_url, timeout=10)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield Backing(urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}")), redis_url, name)
    finally:
        # Reported, never raised: a failed clean-up must not mask the error of the run itself.
        try:
            await drop_database(admin_url, name)
        except Exception as exc:
            print(f"[throwaway] could not drop database {name}: {exc!r}", file=sys.stderr)
        try:
            await delete_namespace(redis_url, name)
        except Exception as exc:
            print(f"[throwaway] could not delete Redis namespace {name}: {exc!r}", file=sys.stderr)


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


@contextlib.asynccontextmanager
async def throwaway_platform(
    backing: Backing,
    *,
    services: Sequence[str] = SERVICES,
    extra_env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    replicas: int = 1,
) -> AsyncIterator[Platform]:
    """Starts `services` (`replicas` of each) and the gateway on free ports against `backing`, with a
    signing secret of their own; stops them on exit (SIGTERM, then SIGKILL after 10 s)."""
    unknown = [s for s in services if s not in SERVICES]
    if unknown:
        raise ValueError(f"unknown services: {unknown}")
    # Every service gets a port, also those not started, so that a service under test calling one of
    # them is refused rather than reaching another deployment on the default ports.
    *ports, gateway_port = distinct_free_ports(len(SERVICES) * replicas + 1)
    first, further = ports[: len(SERVICES)], ports[len(SERVICES) :]
    platform = Platform(
        backing.database_url,
        backing.redis_url,
        secrets.token_urlsafe(32),
        gateway_port,
        dict(zip(SERVICES, first, strict=True)),
        services=list(services),
        replica_ports={name: further[i :: len(SERVICES)] for i, name in enumerate(SERVICES)},
        extra_env={"LABELHIVE_REDIS_NAMESPACE": backing.namespace, **(extra_env or {})},
        log_dir=log_dir,
    )
    try:
        await platform.start()
        yield platform
    except Exception:
        for name, process in platform.processes.items():
            if process.poll() is not None:
                print(f"[throwaway] {name} had exited (status {process.returncode})", file=sys.stderr)
        raise
    finally:
        platform.stop()
