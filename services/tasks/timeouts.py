"""The time-out worker: annotators past `total_time_limit` become `timeout`, so that the publisher's
redistribute replaces them.

However many replicas run, one scans at a time: the one holding the lease `<ns>:tasks:timeout-worker`
(shared/leader.py), renewed each round. A replica that dies stops renewing and another takes over once
the lease expires. The scan itself is safe to run twice at once (a conditional UPDATE that skips locked
rows, so each assignment is marked by exactly one scan), so a lease lost mid-scan costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.tasks.repository import TasksRepository
from shared.leader import LeaderLease
from shared.redis import Keys

log = logging.getLogger(__name__)

SCAN_BATCH = 1000


class TimeoutWorker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        keys: Keys,
        interval: float,
        lock_seconds: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.lease = LeaderLease(redis, keys.of("tasks", "timeout-worker"), lock_seconds)
        self.interval = interval
        self.timed_out = 0

    async def leads(self) -> bool:
        """Takes or renews the lease; whether this replica is the one that scans."""
        return await self.lease.hold()

    async def scan(self) -> list[tuple[int, int]]:
        """Marks every annotator past their deadline; returns (task_id, user_id) of each."""
        marked: list[tuple[int, int]] = []
        while True:
            async with self.sessionmaker.begin() as session:
                batch = await TasksRepository(session).mark_timeouts(datetime.now(UTC), SCAN_BATCH)
            for task_id, user_id in batch:
                log.info("annotator %s timed out on task %s", user_id, task_id)
            marked += batch
            if len(batch) < SCAN_BATCH:
                self.timed_out += len(marked)
                return marked

    async def run(self) -> None:
        try:
            while True:
                try:
                    if await self.leads():
                        await self.scan()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("time-out scan failed")
                await asyncio.sleep(self.interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.lease.release())
