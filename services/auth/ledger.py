"""The points ledger: every change of a balance is an entry with an idempotency key.

Balances live on `users.score` and `escrows.balance` (both CHECK >= 0) and change only here, in the
same transaction as the entry that explains them. Callers lock the rows first (users in id order,
then escrows); the key is looked up after the locks, so of two concurrent requests with the same
key the second waits, sees the first's entry and moves nothing.
"""

from __future__ import annotations

from typing import TypedDict

from services.auth.errors import IdempotencyConflict, ScoreNotEnough
from services.auth.models import Escrow, LedgerEntry, User
from services.auth.repository import AuthRepository

Account = User | Escrow | str  # a str names an account outside the platform, e.g. "external:bank"

BANK = "external:bank"
VIP_SALES = "external:vip"
AD_SALES = "external:ads"
REWARDS = "external:rewards"


class Movement(TypedDict):
    """What names one movement, as `replayed` and `transfer` take it (`**movement`)."""

    key: str
    kind: str
    source: Account
    target: Account
    amount: int


def account_name(account: Account) -> str:
    if isinstance(account, User):
        return f"user:{account.id}"
    if isinstance(account, Escrow):
        return f"escrow:{account.id}"
    return account


def _add(account: Account, amount: int) -> None:
    if isinstance(account, User):
        account.score += amount
    elif isinstance(account, Escrow):
        account.balance += amount


def _balance(account: Account) -> int | None:
    if isinstance(account, User):
        return account.score
    if isinstance(account, Escrow):
        return account.balance
    return None  # outside accounts are not limited


async def transfer(
    repo: AuthRepository,
    *,
    key: str,
    kind: str,
    source: Account,
    target: Account,
    amount: int,
    insufficient: type[Exception] = ScoreNotEnough,
) -> bool:
    """Moves `amount` points; returns False when `key` was already used for this same movement."""
    if amount <= 0:
        raise ValueError("a transfer moves a positive amount")
    if await replayed(repo, key=key, kind=kind, source=source, target=target, amount=amount):
        return False
    balance = _balance(source)
    if balance is not None and balance < amount:
        raise insufficient()
    _add(source, -amount)
    _add(target, amount)
    await repo.add(
        LedgerEntry(
            idempotency_key=key, kind=kind, source=account_name(source), target=account_name(target), amount=amount
        )
    )
    return True


async def replayed(repo: AuthRepository, *, key: str, kind: str, source: Account, target: Account, amount: int) -> bool:
    """True when `key` already moved exactly this; a different movement under the key is a 409."""
    existing = await repo.entry(key)
    if existing is None:
        return False
    same = (existing.kind, existing.source, existing.target, existing.amount) == (
        kind,
        account_name(source),
        account_name(target),
        amount,
    )
    if not same:
        raise IdempotencyConflict()
    return True
