"""The outbox: calls to other services that must follow a commit, sent until they are done.

A request that pays an annotator, refunds a publisher, grows a user's grow value, deducts credit or
changes a dataset's status writes an `OutboxOp` in its own transaction; nothing is sent if that
transaction rolls back. After the commit the request wakes the drainer, which sends the op with its
idempotency key (derived from this service's durable ids, e.g. `task:12:user:7:pay`) and marks it
done in a second transaction. A crash or a peer that is down between the two leaves the op pending:
it is sent again, and auth's ledger recognises the key and moves nothing twice.

Every replica drains; an op is locked (`FOR UPDATE SKIP LOCKED`) while it is sent, and ops of one
group (a task, a user, a dataset) go out in the order they were written, so a task's final refund
("everything left") never overtakes the payouts recorded before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.tasks.models import OutboxOp
from services.tasks.peers import escrow_id
from services.tasks.repository import TasksRepository
from shared.errors import ServiceUnavailable
from shared.http import ServiceClient

log = logging.getLogger(__name__)

BATCH = 20
# An op whose endpoint the peer does not have yet is tried again at most this often.
MISSING_ENDPOINT_BACKOFF = 600.0


# What requests enqueue ------------------------------------------------------------------------


async def payout(repo: TasksRepository, task_id: int, user_id: int, amount: int) -> None:
    key = f"task:{task_id}:user:{user_id}:pay"
    await repo.enqueue(
        key=key,
        grp=f"task:{task_id}",
        kind="payout",
        service="auth",
        method="POST",
        path="/internal/escrow/payout",
        task_id=task_id,
        body={"escrow_id": escrow_id(task_id), "user_id": user_id, "amount": amount, "idempotency_key": key},
    )


async def refund_rest(repo: TasksRepository, task_id: int, reason: str) -> None:
    """Everything left in the task's escrow back to the publisher (after the task's earlier ops)."""
    key = f"task:{task_id}:refund:{reason}"
    await repo.enqueue(
        key=key,
        grp=f"task:{task_id}",
        kind="refund",
        service="auth",
        method="POST",
        path="/internal/escrow/refund",
        task_id=task_id,
        body={"escrow_id": escrow_id(task_id), "amount": None, "idempotency_key": key},
    )


async def grow_value(repo: TasksRepository, user_id: int, amount: int, key: str) -> None:
    """003: publishing a task and a completed labelling each grow the user's grow value.

    Auth has no endpoint for it yet; this is the one it needs:
    `POST /internal/users/{user_id}/grow_value {"amount": int > 0, "idempotency_key": str}` -> 200.
    Until it exists the op stays pending (auth answers 404 NOT_FOUND) and is sent once it does.
    """
    await repo.enqueue(
        key=key,
        grp=f"user:{user_id}",
        kind="grow",
        service="auth",
        method="POST",
        path=f"/internal/users/{user_id}/grow_value",
        body={"amount": amount, "idempotency_key": key},
    )


async def deduct_credit(repo: TasksRepository, user_id: int, amount: int, key: str) -> None:
    """003: an accepted report deducts the reportee's credit score.

    Wanted from auth: `POST /internal/users/{user_id}/credit {"delta": int (negative deducts),
    "idempotency_key": str}` -> 200 with the new credit_score (floored at 0). Pending until it exists.
    """
    await repo.enqueue(
        key=key,
        grp=f"user:{user_id}",
        kind="credit",
        service="auth",
        method="POST",
        path=f"/internal/users/{user_id}/credit",
        body={"delta": -amount, "idempotency_key": key},
    )


async def dataset_status(
    repo: TasksRepository, dataset_id: int, status: str, assigned_at: datetime | None, key: str
) -> None:
    body: dict[str, Any] = {"status": status, "assigned_at": assigned_at.isoformat() if assigned_at else None}
    await repo.enqueue(
        key=key,
        grp=f"dataset:{dataset_id}",
        kind="dataset_status",
        service="dataset",
        method="PUT",
        path=f"/internal/qa/{dataset_id}/status",
        body=body,
    )


# The drainer ----------------------------------------------------------------------------------


def _outcome(op: OutboxOp, response: httpx.Response) -> str:
    """done | retry | missing (the peer lacks the endpoint: retried rarely) | failed."""
    if response.status_code < 300:
        return "done"
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 404:
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        if op.kind == "refund" and "escrow" in message:
            return "done"  # the task never held anything: nothing to refund
        if body.get("code") == 1000 and "escrow" not in message and "does not exist" not in message:
            return "missing"  # the peer does not have this endpoint yet (see grow_value, deduct_credit)
        return "failed"
    if response.status_code >= 500 or response.status_code in (401, 403, 429):
        return "retry"
    return "failed"


class Outbox:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clients: dict[str, ServiceClient],
        interval: float,
        max_backoff: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clients = clients
        self.interval = interval
        self.max_backoff = max_backoff
        self.wake = asyncio.Event()

    def poke(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        while True:
            try:
                busy = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox round failed")
                busy = False
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval)
            self.wake.clear()

    async def drain_once(self) -> bool:
        """Sends one batch; True when there was anything to send."""
        async with self.sessionmaker() as session:
            repo = TasksRepository(session)
            ops = await repo.due_ops(datetime.now(UTC), BATCH)
            sent_any = False
            for op in ops:
                sent_any = await self._send(op) or sent_any
                await session.flush()
            await session.commit()
        return sent_any

    async def _send(self, op: OutboxOp) -> bool:
        op.attempts += 1
        now = datetime.now(UTC)
        try:
            response = await self.clients[op.service].request(op.method, op.path, json=op.body)
            outcome = _outcome(op, response)
            error = None if outcome == "done" else f"HTTP {response.status_code}: {response.text[:300]}"
        except ServiceUnavailable as exc:
            outcome, error = "retry", f"{exc.message} ({exc.details})"
        if outcome == "done":
            op.status, op.done_at, op.last_error = "done", now, None
            return True
        op.last_error = (error or "")[:500]
        if outcome == "failed":
            op.status = "failed"
            log.error("outbox op %s (%s) failed for good: %s", op.key, op.kind, error)
            return True
        cap = MISSING_ENDPOINT_BACKOFF if outcome == "missing" else self.max_backoff
        delay = min(cap, 0.25 * 2 ** min(op.attempts, 16))
        op.next_attempt_at = now + timedelta(seconds=delay)
        log.warning("outbox op %s (%s) will be retried in %.1fs: %s", op.key, op.kind, delay, error)
        return False
