"""One leader among the replicas of a service: a Redis lease with a token, renewed by its holder.

`LeaderLease.hold()` takes the lease `<key>` when it is free, or renews it when this instance holds it
(one Lua script, so "is it mine? then extend it" is atomic); it answers False while another instance
holds it. The holder renews well within `ttl_seconds`; one that dies or hangs stops renewing, and another
takes over once the lease expires. `release()` deletes the lease only if it still carries this instance's
token, so a holder that lost its lease never frees its successor's.

Why a Redis lease rather than a PostgreSQL advisory lock: a session-level advisory lock lives on one
database connection, which the services take from a pool per unit of work; the leader would have to pin
a connection for its lifetime, a connection pooler in transaction mode would lose the lock silently, and
a holder that hangs without dropping its connection would keep the lock for ever. A lease bounds the
take-over time by its TTL whatever happened to the holder, and every replica already talks to Redis.

What a lease cannot promise (no lock without fencing can): a holder paused for longer than its TTL
(a stalled event loop, a partition) may still act for a moment after another took over. `held` is this
instance's own conservative view (the TTL counted from before the request, less an allowance for clock
drift), but the work done under the lease must still be harmless when it runs twice: the lease saves
work, the database keeps it correct (e.g. the time-out scan is a conditional UPDATE that skips locked
rows, services/tasks/timeouts.py).
"""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

# Take the lease, or renew it when it is already ours.
_HOLD = """
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

# Redis and this process measure the TTL with different clocks (Redis rounds to milliseconds): the holder
# believes in its lease a little less long than Redis keeps it (Redlock's allowance).
CLOCK_DRIFT_FACTOR = 0.01
CLOCK_DRIFT_SECONDS = 0.002


class LeaderLease:
    def __init__(self, redis: Redis, key: str, ttl_seconds: float) -> None:
        self.redis = redis
        self.key = key
        self.ttl_seconds = ttl_seconds
        self.token = uuid.uuid4().hex
        # Until when (time.monotonic()) this instance is sure it leads; 0 when it does not.
        self.held_until = 0.0

    async def hold(self) -> bool:
        """Takes or renews the lease; False while another instance holds it. Redis errors propagate
        (the caller's loop logs them and tries again); `held` then runs out on its own."""
        started = time.monotonic()
        ttl_ms = max(1, int(self.ttl_seconds * 1000))
        taken = bool(await self.redis.eval(_HOLD, 1, self.key, self.token, ttl_ms))
        if taken:
            self.held_until = started + self.ttl_seconds * (1 - CLOCK_DRIFT_FACTOR) - CLOCK_DRIFT_SECONDS
        else:
            self.held_until = 0.0
        return taken

    @property
    def held(self) -> bool:
        return time.monotonic() < self.held_until

    async def release(self) -> None:
        """Gives the lease up at once (on shutdown), if it is still this instance's."""
        self.held_until = 0.0
        await self.redis.eval(_RELEASE, 1, self.key, self.token)
