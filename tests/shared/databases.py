"""A database of its own, for background workers tested without the platform.

The platform's services run their own workers (outbox drainers, the time-out worker, the stats
consumer) on the run's database; a test that counts what two workers of its own did must not have them
racing a third it cannot see. So such a test gets a fresh database on the same server, with the schemas
of the services it needs migrated, dropped afterwards (with a Redis namespace of its own, too).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from shared.migrations import upgrade_async
from tools.throwaway_platform import Backing, throwaway_backing


@contextlib.asynccontextmanager
async def fresh_backing(backing: Backing, *services: str) -> AsyncIterator[Backing]:
    """A new database (and namespace) on `backing`'s servers with `services`' schemas; removed on exit."""
    admin_url = urlunsplit(urlsplit(backing.database_url)._replace(path="/postgres"))
    async with throwaway_backing(admin_url, backing.redis_url, "labelhive_workers") as own:
        for service in services:
            await upgrade_async(service, own.database_url)
        yield own
