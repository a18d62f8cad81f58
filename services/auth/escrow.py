"""Escrow for the tasks service: hold a publisher's points, pay annotators out of them, refund the
rest. Every call carries the caller's idempotency key."""

from __future__ import annotations

from services.auth import ledger
from services.auth.errors import IdempotencyConflict, ScoreNotEnough
from services.auth.models import Escrow
from services.auth.repository import AuthRepository
from shared.errors import LabelhiveError, NotFound


class EscrowExhausted(LabelhiveError):
    status_code = 409
    code = 5
    message = "escrow balance not enough"


async def _escrow(repo: AuthRepository, escrow_id: str) -> Escrow:
    escrow = await repo.escrow(escrow_id, lock=True)
    if escrow is None:
        raise NotFound(f"escrow {escrow_id} does not exist")
    return escrow


async def hold(repo: AuthRepository, escrow_id: str, owner_id: int, amount: int, key: str) -> Escrow:
    """Makes the escrow hold exactly `amount` of its owner's points: it takes only what the escrow lacks
    and returns what it has beyond that. A hold that an earlier attempt left behind (the caller died
    before recording it, then asked for another amount) is counted, never taken twice.

    The key names what the caller holds for (e.g. one version of a task), not the amount: under the
    locks, a key already in the ledger is a replay and moves nothing.
    """
    owner = (await repo.lock_users([owner_id])).get(owner_id)
    if owner is None:
        raise NotFound(f"user {owner_id} does not exist")
    escrow = await repo.escrow(escrow_id, lock=True)
    if escrow is None:
        escrow = Escrow(id=escrow_id, owner_id=owner_id, balance=0)
        await repo.add(escrow)
    elif escrow.owner_id != owner_id:
        raise LabelhiveError(f"escrow {escrow_id} belongs to another user", status_code=409)
    if (done := await repo.entry(key)) is not None:
        if done.kind not in ("escrow_hold", "escrow_refund") or ledger.account_name(escrow) not in (
            done.source,
            done.target,
        ):
            raise IdempotencyConflict()
        return escrow
    lacking = amount - escrow.balance
    if lacking > 0:
        await ledger.transfer(
            repo, key=key, kind="escrow_hold", source=owner, target=escrow, amount=lacking, insufficient=ScoreNotEnough
        )
    elif lacking < 0:
        await ledger.transfer(
            repo,
            key=key,
            kind="escrow_refund",
            source=escrow,
            target=owner,
            amount=-lacking,
            insufficient=EscrowExhausted,
        )
    return escrow


async def pay_out(repo: AuthRepository, escrow_id: str, user_id: int, amount: int, key: str) -> Escrow:
    annotator = (await repo.lock_users([user_id])).get(user_id)
    if annotator is None:
        raise NotFound(f"user {user_id} does not exist")
    escrow = await _escrow(repo, escrow_id)
    if await ledger.transfer(
        repo,
        key=key,
        kind="escrow_payout",
        source=escrow,
        target=annotator,
        amount=amount,
        insufficient=EscrowExhausted,
    ):
        annotator.tag_score += amount
    return escrow


async def refund(repo: AuthRepository, escrow_id: str, amount: int | None, key: str) -> Escrow:
    """Refunds `amount`, or everything left when it is None, to the escrow's owner."""
    unlocked = await repo.escrow(escrow_id)
    if unlocked is None:
        raise NotFound(f"escrow {escrow_id} does not exist")
    owner = (await repo.lock_users([unlocked.owner_id]))[unlocked.owner_id]
    escrow = await _escrow(repo, escrow_id)
    if amount is None:
        # "Everything left" differs on a replay, so a replay is recognised by its key alone.
        if await repo.entry(key) is not None or escrow.balance == 0:
            return escrow
        amount = escrow.balance
    await ledger.transfer(
        repo, key=key, kind="escrow_refund", source=escrow, target=owner, amount=amount, insufficient=EscrowExhausted
    )
    return escrow
