"""Points bought and sold: recharge and withdraw against a bank card, VIP packages and ads.

Each operation locks the user first (then the card), so concurrent requests of one user queue
behind each other and the ledger's idempotency check sees the winner's entry.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from services.auth import ledger
from services.auth.errors import (
    AdNotFound,
    AdScoreNotEnough,
    AlreadyVip,
    BalanceNotEnough,
    BankCardTaken,
    NoBankCard,
)
from services.auth.membership import MAX_PREPAID, VIP_PACKAGES, is_vip
from services.auth.models import Ad, BankCard, User
from services.auth.repository import AuthRepository

POINTS_PER_YUAN = 10


async def _locked_user(repo: AuthRepository, user_id: int) -> User:
    return (await repo.lock_users([user_id]))[user_id]


async def _locked_card(repo: AuthRepository, user: User) -> BankCard:
    card = await repo.card(user.bank_account, lock=True) if user.bank_account else None
    if card is None:
        raise NoBankCard()
    return card


async def recharge(repo: AuthRepository, user_id: int, yuan: int, key: str, now: datetime) -> None:
    user = await _locked_user(repo, user_id)
    points = yuan * POINTS_PER_YUAN
    movement = ledger.Movement(key=key, kind="recharge", source=ledger.BANK, target=user, amount=points)
    if await ledger.replayed(repo, **movement):
        return
    card = await _locked_card(repo, user)
    if card.balance < yuan:
        raise BalanceNotEnough()
    card.balance -= yuan
    await ledger.transfer(repo, **movement)
    if is_vip(user, now):
        user.grow_value += points  # 003: recharging grows a member's grow value by the points bought


async def withdraw(repo: AuthRepository, user_id: int, yuan: int, key: str) -> None:
    user = await _locked_user(repo, user_id)
    movement = ledger.Movement(key=key, kind="withdraw", source=user, target=ledger.BANK, amount=yuan * POINTS_PER_YUAN)
    if await ledger.replayed(repo, **movement):
        return
    card = await _locked_card(repo, user)
    await ledger.transfer(repo, **movement)
    card.balance += yuan


async def bind_bank_account(repo: AuthRepository, user_id: int, account: str) -> None:
    user = await _locked_user(repo, user_id)
    card = await repo.card(account, lock=True)
    if card is None:
        # 003: an unknown card is opened with a random balance (this is a demo bank).
        card = BankCard(account=account, owner_id=user.id, balance=random.randint(1_000, 10_000))
        await repo.add(card)
    elif card.owner_id != user.id:
        raise BankCardTaken()
    user.bank_account = account


def bank_balance(card: BankCard | None) -> int:
    return card.balance if card else 0


async def buy_vip(repo: AuthRepository, user_id: int, package: str, key: str, now: datetime) -> None:
    user = await _locked_user(repo, user_id)
    points, days = VIP_PACKAGES[package]
    movement = ledger.Movement(key=key, kind="vip", source=user, target=ledger.VIP_SALES, amount=points)
    if await ledger.replayed(repo, **movement):
        return
    # A member's new days follow those left; anyone else's start now (`is_vip`: expiry after now).
    start = max(now, user.vip_expire_at or now)
    new_expiry = start + timedelta(days=days)
    if new_expiry - now > MAX_PREPAID + timedelta(days=1):
        raise AlreadyVip()
    await ledger.transfer(repo, **movement)
    user.vip_expire_at = new_expiry


async def publish_ad(
    repo: AuthRepository, user_id: int, seconds: int, ad_type: str, url: str, key: str, now: datetime
) -> Ad | None:
    """003: an ad costs one point per second it runs."""
    user = await _locked_user(repo, user_id)
    moved = await ledger.transfer(
        repo, key=key, kind="ad", source=user, target=ledger.AD_SALES, amount=seconds, insufficient=AdScoreNotEnough
    )
    if not moved:
        return None
    ad = Ad(owner_id=user.id, ad_type=ad_type, url=url, publish_at=now, expire_at=now + timedelta(seconds=seconds))
    await repo.add(ad)
    return ad


async def renew_ad(repo: AuthRepository, user_id: int, ad_id: int, seconds: int, key: str, now: datetime) -> None:
    user = await _locked_user(repo, user_id)
    ad = await repo.ad(ad_id, lock=True)
    if ad is None or ad.owner_id != user.id:
        raise AdNotFound()
    moved = await ledger.transfer(
        repo, key=key, kind="ad", source=user, target=ledger.AD_SALES, amount=seconds, insufficient=AdScoreNotEnough
    )
    if moved:
        ad.expire_at = max(ad.expire_at, now) + timedelta(seconds=seconds)
