"""Sessions and API keys as the gateway resolves them: Redis entries keyed by the SHA-256 of the
secret, so a Redis dump holds no usable token. The auth service writes them; the gateway reads them
once per request and forwards a signed identity.

Every revocation (logout, ban, password change, key revocation) is also announced on a Redis channel,
so that the gateway's in-process cache of resolved credentials (`CredentialCache`) drops them at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import cast

import orjson
from redis.asyncio import Redis

from shared.access import Credential
from shared.identity import Identity
from shared.redis import Keys

log = logging.getLogger(__name__)

SESSION_COOKIE = "labelhive_session"
API_KEY_HEADER = "X-API-Key"
SESSION_TTL_SECONDS = 7 * 24 * 3600
# The channel that carries revoked credentials' ids (space-separated digests).
REVOCATIONS = "revocations"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _identity(raw: str | bytes | None) -> Identity | None:
    return Identity(**orjson.loads(raw)) if raw else None


class SessionStore:
    def __init__(self, redis: Redis, keys: Keys, ttl: int = SESSION_TTL_SECONDS) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl

    @property
    def revocations_channel(self) -> str:
        return self.keys.of(REVOCATIONS)

    async def create(self, user_id: int, user_name: str, role: str) -> str:
        token = secrets.token_urlsafe(32)
        token_id = digest(token)
        identity = Identity(user_id, user_name, role, via=Credential.SESSION, credential=token_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.of("sess", token_id), orjson.dumps(asdict(identity)), ex=self.ttl)
            pipe.sadd(self.keys.of("user-sessions", user_id), token_id)
            pipe.expire(self.keys.of("user-sessions", user_id), self.ttl)
            await pipe.execute()
        return token

    async def resolve_session(self, token: str) -> Identity | None:
        return await self.session_by_id(digest(token))

    async def session_by_id(self, token_id: str) -> Identity | None:
        return _identity(await self.redis.get(self.keys.of("sess", token_id)))

    async def resolve_api_key(self, key: str) -> Identity | None:
        return await self.api_key_by_hash(digest(key))

    async def api_key_by_hash(self, key_hash: str) -> Identity | None:
        return _identity(await self.redis.get(self.keys.of("apikey", key_hash)))

    async def revoke(self, identity: Identity) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.of("sess", identity.credential))
            pipe.srem(self.keys.of("user-sessions", identity.user_id), identity.credential)
            pipe.publish(self.revocations_channel, identity.credential)
            await pipe.execute()

    async def revoke_user(self, user_id: int, keep: str = "") -> None:
        """Ends every session of a user but `keep` (a ban ends all; a password change the others)."""
        index = self.keys.of("user-sessions", user_id)
        # The client decodes replies (shared.redis.create_redis): the members are str, not bytes.
        members = cast(set[str], await self.redis.smembers(index))
        token_ids = {t for t in members if t != keep}
        if token_ids:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(*(self.keys.of("sess", t) for t in token_ids))
                pipe.srem(index, *token_ids)
                pipe.publish(self.revocations_channel, " ".join(token_ids))
                await pipe.execute()

    async def publish_api_key(self, key_hash: str, identity: Identity) -> None:
        await self.redis.set(self.keys.of("apikey", key_hash), orjson.dumps(asdict(identity)))

    async def withdraw_api_key(self, key_hash: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.of("apikey", key_hash))
            pipe.publish(self.revocations_channel, key_hash)
            await pipe.execute()


class CredentialCache:
    """The gateway's in-process memory of credentials it resolved, for `ttl` seconds, so that a busy
    session costs one Redis read every few seconds instead of one per request.

    A revocation must still end a credential at once: the store announces it before the revoking
    request is answered (and that answer passes back through the gateway), and `follow_revocations`
    drops it from the cache as the announcement arrives. The cache is used only while that
    subscription is up: a lost connection could have missed an announcement, so it is emptied and
    bypassed until the gateway is subscribed again. Unknown credentials are not remembered.
    """

    def __init__(self, store: SessionStore, ttl: float = 5.0, max_entries: int = 50_000) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        # Keyed by kind too: a key's digest presented as a session token (or the reverse) must not find
        # the other kind's identity here, or what a key opens would depend on what was cached.
        self._entries: dict[tuple[Credential, str], tuple[float, Identity]] = {}
        self._following = False
        # Counts revocations and subscription changes: a read that one overtook is not remembered.
        self._generation = 0

    async def resolve_session(self, token: str) -> Identity | None:
        return await self._resolve(Credential.SESSION, digest(token), self.store.session_by_id)

    async def resolve_api_key(self, key: str) -> Identity | None:
        return await self._resolve(Credential.API_KEY, digest(key), self.store.api_key_by_hash)

    async def _resolve(
        self, kind: Credential, credential_id: str, lookup: Callable[[str], Awaitable[Identity | None]]
    ) -> Identity | None:
        now = time.monotonic()
        entry = self._entries.get((kind, credential_id))
        if entry is not None and entry[0] > now:
            return entry[1]
        generation = self._generation
        identity = await lookup(credential_id)
        if identity is not None and self.ttl > 0 and self._following and generation == self._generation:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[(kind, credential_id)] = (now + self.ttl, identity)
        return identity

    def forget(self, credential_ids: str) -> None:
        self._generation += 1
        for credential_id in credential_ids.split():
            for kind in Credential:
                self._entries.pop((kind, credential_id), None)

    async def follow_revocations(self, retry_seconds: float = 1.0) -> None:
        """Runs for the gateway's lifetime: subscribes to revocations and drops each from the cache."""
        while True:
            pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.store.revocations_channel)
                self._entries.clear()
                self._following = True
                self._generation += 1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.forget(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis out of reach: resolve every request in Redis until it is back
                log.warning("credential cache off, revocations not followed: %s", type(exc).__name__)
            finally:
                self._following = False
                self._generation += 1
                self._entries.clear()
                await pubsub.aclose()
            await asyncio.sleep(retry_seconds)
