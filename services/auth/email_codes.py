"""Email verification codes: six digits, single use, expiring, with a cap on wrong guesses.

A code is kept in Redis well past its expiry so that a late answer reads "expired" (45), not
"wrong" (46). Only a digest of the code is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from redis.asyncio import Redis

from services.auth.errors import CodeExpired, WrongCode
from shared.redis import Keys

_RETENTION_SECONDS = 24 * 3600


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class EmailCodes:
    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: int, max_attempts: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl_seconds
        self.max_attempts = max_attempts

    def _key(self, email: str) -> str:
        return self.keys.of("email-code", email.lower())

    async def issue(self, email: str) -> str:
        code = f"{secrets.randbelow(1_000_000):06d}"
        key = self._key(email)
        mapping = {"digest": _digest(code), "expires_at": time.time() + self.ttl, "attempts": 0}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, _RETENTION_SECONDS)
            await pipe.execute()
        return code

    async def consume(self, email: str, code: str, *, missing: type[Exception] = WrongCode) -> None:
        """Accepts the code once; raises 45 when expired or over its guesses, 46 when wrong and
        `missing` when no code was ever sent to this address."""
        key = self._key(email)
        stored = await self.redis.hgetall(key)
        if not stored:
            raise missing()
        if float(stored["expires_at"]) < time.time() or int(stored["attempts"]) >= self.max_attempts:
            raise CodeExpired()
        if not hmac.compare_digest(stored["digest"], _digest(code.strip())):
            await self.redis.hincrby(key, "attempts", 1)
            raise WrongCode()
        await self.redis.delete(key)


