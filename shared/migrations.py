"""Alembic, one environment per service, each keeping its version table in its own schema.

Each service's `migrations/env.py` is two lines that call `run_env` with its metadata. Services
upgrade themselves at start-up under a PostgreSQL advisory lock, so replicas starting together
migrate once. CLI for developers:

    python -m shared.migrations upgrade auth          # DATABASE_URL from the environment
    python -m shared.migrations revision auth "add x"  # autogenerate against that database
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.db import asyncpg_url

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(service: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    config.attributes["url"] = asyncpg_url(database_url)
    return config


def upgrade(service: str, database_url: str) -> None:
    """Blocking: run it in a thread from async code (Alembic's env runs its own event loop)."""
    command.upgrade(alembic_config(service, database_url), "head")


async def upgrade_async(service: str, database_url: str) -> None:
    await asyncio.to_thread(upgrade, service, database_url)


def run_env(metadata: MetaData) -> None:
    """The body of every service's env.py."""
    schema = metadata.schema
    assert schema, "service metadata must name its schema"
    url = context.config.attributes["url"]

    def run(connection) -> None:  # type: ignore[no-untyped-def]
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, kind, _parent: kind != "schema" or name == schema,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        lock = text("SELECT pg_advisory_lock(hashtext(:key))").bindparams(key=f"labelhive:{schema}")
        unlock = text("SELECT pg_advisory_unlock(hashtext(:key))").bindparams(key=f"labelhive:{schema}")
        async with engine.connect() as connection:
            await connection.execute(lock)
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await connection.commit()
            await connection.run_sync(run)
            await connection.commit()
            await connection.execute(unlock)
        await engine.dispose()

    asyncio.run(main())


def main(argv: list[str]) -> None:
    verb, service, *rest = argv
    config = alembic_config(service, os.environ["DATABASE_URL"])
    if verb == "upgrade":
        command.upgrade(config, "head")
    elif verb == "revision":
        command.revision(config, message=rest[0] if rest else "change", autogenerate=True)
    else:
        raise SystemExit(f"unknown verb {verb!r}: upgrade | revision")


if __name__ == "__main__":
    main(sys.argv[1:])
