"""The time-out worker: annotators past `total_time_limit` become `timeout`, so that the publisher's
redistribute replaces them.

However many replicas run, one scans at a time: a replica scans only while it holds the Redis lock
`<ns>:tasks:timeout-worker` (SET NX with an expiry, renewed by its holder each round). A replica that
dies stops renewing and another takes over once the lock expires. The scan itself is also safe to run
twice (a conditional UPDATE that skips locked rows), so a lock lost mid-scan costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.tasks.repository import TasksRepository
from shared.redis import Keys

log = logging.getLogger(__name__)

# Take the lock, or renew it when it is already ours.
_ACQUIRE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


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
        self.redis = redis
        self.lock_key = keys.of("tasks", "timeout-worker")
        self.interval = interval
        self.lock_ms = int(lock_seconds * 1000)
        self.instance = uuid.uuid4().hex
        self.timed_out = 0

    async def leads(self) -> bool:
        return bool(await self.redis.eval(_ACQUIRE, 1, self.lock_key, self.instance, self.lock_ms))

    async def scan(self) -> int:
        """Marks every annotator past their deadline; returns how many."""
        total = 0
        while True:
            async with self.sessionmaker() as session:
                marked = await TasksRepository(session).mark_timeouts(datetime.now(UTC))
                await session.commit()
            total += len(marked)
            for task_id, user_id in marked:
                log.info("annotator %s timed out on task %s", user_id, task_id)
            if len(marked) < 1000:
                self.timed_out += total
                return total

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
                await asyncio.shield(self.redis.eval(_RELEASE, 1, self.lock_key, self.instance))
