"""Sessions and API keys as the gateway resolves them: Redis entries keyed by the SHA-256 of the
secret, so a Redis dump holds no usable token. The auth service writes them; the gateway reads them
once per request and forwards a signed identity."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict

from redis.asyncio import Redis

from shared.access import Credential
from shared.identity import Identity
from shared.redis import Keys

SESSION_COOKIE = "labelhive_session"
API_KEY_HEADER = "X-API-Key"
SESSION_TTL_SECONDS = 7 * 24 * 3600


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionStore:
    def __init__(self, redis: Redis, keys: Keys, ttl: int = SESSION_TTL_SECONDS) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl

    async def create(self, user_id: int, user_name: str, role: str) -> str:
        token = secrets.token_urlsafe(32)
        token_id = digest(token)
        identity = Identity(user_id, user_name, role, via=Credential.SESSION, credential=token_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.of("sess", token_id), json.dumps(asdict(identity)), ex=self.ttl)
            pipe.sadd(self.keys.of("user-sessions", user_id), token_id)
            pipe.expire(self.keys.of("user-sessions", user_id), self.ttl)
            await pipe.execute()
        return token

    async def resolve_session(self, token: str) -> Identity | None:
        raw = await self.redis.get(self.keys.of("sess", digest(token)))
        return Identity(**json.loads(raw)) if raw else None

    async def resolve_api_key(self, key: str) -> Identity | None:
        raw = await self.redis.get(self.keys.of("apikey", digest(key)))
        return Identity(**json.loads(raw)) if raw else None

    async def revoke(self, identity: Identity) -> None:
        await self.redis.delete(self.keys.of("sess", identity.credential))
        await self.redis.srem(self.keys.of("user-sessions", identity.user_id), identity.credential)

    async def revoke_user(self, user_id: int, keep: str = "") -> None:
        """Ends every session of a user but `keep` (a ban ends all; a password change the others)."""
        index = self.keys.of("user-sessions", user_id)
        token_ids = {t for t in await self.redis.smembers(index) if t != keep}
        if token_ids:
            await self.redis.delete(*(self.keys.of("sess", t) for t in token_ids))
            await self.redis.srem(index, *token_ids)

    async def publish_api_key(self, key_hash: str, identity: Identity) -> None:
        await self.redis.set(self.keys.of("apikey", key_hash), json.dumps(asdict(identity)))

    async def withdraw_api_key(self, key_hash: str) -> None:
        await self.redis.delete(self.keys.of("apikey", key_hash))
