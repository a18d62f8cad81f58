"""Grow value and credit score changed by other services (003: publishing a task and finished
labelling grow the grow value; an accepted report costs the reported user credit). Each change
carries an idempotency key, like a ledger entry, so a retry changes nothing."""

from __future__ import annotations

from services.auth.accounts import existing_user
from services.auth.errors import IdempotencyConflict
from services.auth.models import Adjustment, User
from services.auth.repository import AuthRepository


async def adjust(repo: AuthRepository, user_id: int, kind: str, delta: int, key: str) -> User:
    user = await existing_user(repo, user_id, lock=True)
    existing = await repo.adjustment(key)
    if existing is not None:
        if (existing.user_id, existing.kind, existing.delta) != (user_id, kind, delta):
            raise IdempotencyConflict()
        return user
    if kind == "grow_value":
        user.grow_value += delta
    else:
        user.credit_score = max(0, user.credit_score + delta)  # 003: credit never goes below 0
    await repo.add(Adjustment(idempotency_key=key, user_id=user_id, kind=kind, delta=delta))
    return user
