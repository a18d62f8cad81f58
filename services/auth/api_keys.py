"""API keys for the AI services (CONTRACT.md): created, listed and revoked by admins, shown once,
stored as a digest and published to Redis for the gateway to resolve."""

from __future__ import annotations

import secrets
from datetime import datetime

from services.auth.models import ApiKey
from services.auth.repository import AuthRepository
from shared.access import Credential
from shared.errors import NotFound
from shared.identity import Identity
from shared.sessions import SessionStore, digest

KEY_PREFIX = "lh_"
API_KEY_ROLE = "apikey"


def key_identity(key: ApiKey) -> Identity:
    return Identity(key.created_by, key.name, API_KEY_ROLE, via=Credential.API_KEY, credential=key.prefix)


async def create(repo: AuthRepository, name: str, admin_id: int) -> tuple[ApiKey, str]:
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=raw[:10], key_hash=digest(raw), created_by=admin_id)
    await repo.add(key)
    return key, raw


async def revoke(repo: AuthRepository, key_id: int, now: datetime) -> ApiKey:
    key = await repo.api_key(key_id)
    if key is None:
        raise NotFound(f"api key {key_id} does not exist")
    key.revoked_at = key.revoked_at or now
    return key


async def revoke_all_of(repo: AuthRepository, user_id: int, now: datetime) -> list[ApiKey]:
    """Revokes every live key a user created (a ban ends the keys with the sessions)."""
    keys = list(await repo.live_api_keys_of(user_id))
    for key in keys:
        key.revoked_at = now
    return keys


async def withdraw(sessions: SessionStore, keys: list[ApiKey]) -> None:
    for key in keys:
        await sessions.withdraw_api_key(key.key_hash)


async def publish_all(repo: AuthRepository, sessions: SessionStore) -> None:
    """Brings Redis in line with the table, e.g. after Redis lost its data."""
    for key in await repo.api_keys():
        if key.revoked_at is None:
            await sessions.publish_api_key(key.key_hash, key_identity(key))
        else:
            await sessions.withdraw_api_key(key.key_hash)
