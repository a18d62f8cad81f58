"""Email verification codes: six digits, single use, expiring, with a cap on guesses.

A code is kept in Redis well past its expiry so that a late answer reads "expired" (45), not
"wrong" (46). Only a digest of the code is stored. A guess is counted and judged in one Lua script,
so parallel guesses cannot all read the count before any of them raises it.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from redis.asyncio import Redis

from services.auth.errors import CodeExpired, WrongCode
from shared.redis import Keys

_RETENTION_SECONDS = 24 * 3600

# KEYS[1]: the code's hash; ARGV: the guess's digest, now, the cap. Every guess counts, the right one too.
_CONSUME = """
local stored = redis.call('HMGET', KEYS[1], 'digest', 'expires_at')
if not stored[1] then return 'missing' end
if tonumber(stored[2]) < tonumber(ARGV[2]) then return 'expired' end
if redis.call('HINCRBY', KEYS[1], 'attempts', 1) > tonumber(ARGV[3]) then return 'expired' end
if stored[1] ~= ARGV[1] then return 'wrong' end
redis.call('DEL', KEYS[1])
return 'ok'
"""


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class EmailCodes:
    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: int, max_attempts: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl_seconds
        self.max_attempts = max_attempts
        self._consume = redis.register_script(_CONSUME)

    def _key(self, email: str) -> str:
        return self.keys.of("email-code", email.lower())

    async def issue(self, email: str) -> str:
        code = f"{secrets.randbelow(1_000_000):06d}"
        key = self._key(email)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"digest": _digest(code), "expires_at": time.time() + self.ttl, "attempts": 0})
            pipe.expire(key, _RETENTION_SECONDS)
            await pipe.execute()
        return code

    async def consume(self, email: str, code: str, *, missing: type[Exception] = WrongCode) -> None:
        """Accepts the code once; raises 45 when expired or over its guesses, 46 when wrong and
        `missing` when no code was ever sent to this address."""
        outcome = await self._consume(
            keys=[self._key(email)], args=[_digest(code.strip()), time.time(), self.max_attempts]
        )
        outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
        if outcome == "missing":
            raise missing()
        if outcome == "expired":
            raise CodeExpired()
        if outcome == "wrong":
            raise WrongCode()
