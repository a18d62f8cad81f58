"""The outbox: calls to other services that must follow a commit, sent until they are done.

A request that pays an annotator, refunds a publisher, grows a user's grow value, deducts credit or
changes a dataset's status writes an `OutboxOp` in its own transaction; nothing is sent if that
transaction rolls back. After the commit the request wakes the drainer, which sends the op with its
idempotency key (derived from this service's durable ids, e.g. `task:12:user:7:pay`) and marks it
done in a second transaction. A crash or a peer that is down between the two leaves the op pending:
it is sent again, and auth's ledger recognises the key and moves nothing twice.

The drainer is shared/outbox.py's: every replica drains, an op is locked (`FOR UPDATE SKIP LOCKED`)
while it is sent, so replicas share the ops without sending one twice. Ops of one group (a task, a
user, a dataset) go out in the order they were written (`TasksRepository.due_ops` offers only the first
pending op of each group), so a task's final refund ("everything left") never overtakes the payouts
recorded before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.tasks.models import OutboxOp
from services.tasks.peers import escrow_id
from services.tasks.repository import TasksRepository
from shared.errors import ServiceUnavailable
from shared.http import ServiceClient
from shared.outbox import Delivery, OutboxDrainer, Outcome

BATCH = 20
# An op whose endpoint the peer does not have yet is tried again at most this often.
MISSING_ENDPOINT_BACKOFF = 600.0


# What requests enqueue ------------------------------------------------------------------------


async def _to_auth(
    repo: TasksRepository, key: str, grp: str, kind: str, path: str, body: dict[str, Any], task_id: int | None = None
) -> None:
    """An op for auth (every one a POST), sent after the earlier ops of its group `grp`."""
    await repo.enqueue(
        key=key, grp=grp, kind=kind, service="auth", method="POST", path=path, task_id=task_id, body=body
    )


async def payout(repo: TasksRepository, task_id: int, user_id: int, amount: int) -> None:
    key = f"task:{task_id}:user:{user_id}:pay"
    body = {"escrow_id": escrow_id(task_id), "user_id": user_id, "amount": amount, "idempotency_key": key}
    await _to_auth(repo, key, f"task:{task_id}", "payout", "/internal/escrow/payout", body, task_id)


async def refund_rest(repo: TasksRepository, task_id: int, reason: str) -> None:
    """Everything left in the task's escrow back to the publisher (after the task's earlier ops)."""
    key = f"task:{task_id}:refund:{reason}"
    body = {"escrow_id": escrow_id(task_id), "amount": None, "idempotency_key": key}
    await _to_auth(repo, key, f"task:{task_id}", "refund", "/internal/escrow/refund", body, task_id)


async def grow_value(repo: TasksRepository, user_id: int, amount: int, key: str) -> None:
    """003: publishing a task and a completed labelling each grow the user's grow value.

    Auth has no endpoint for it yet; this is the one it needs:
    `POST /internal/users/{user_id}/grow_value {"amount": int > 0, "idempotency_key": str}` -> 200.
    Until it exists the op stays pending (auth answers 404 NOT_FOUND) and is sent once it does.
    """
    body = {"amount": amount, "idempotency_key": key}
    await _to_auth(repo, key, f"user:{user_id}", "grow", f"/internal/users/{user_id}/grow_value", body)


async def deduct_credit(repo: TasksRepository, user_id: int, amount: int, key: str) -> None:
    """003: an accepted report deducts the reportee's credit score.

    Wanted from auth: `POST /internal/users/{user_id}/credit {"delta": int (negative deducts),
    "idempotency_key": str}` -> 200 with the new credit_score (floored at 0). Pending until it exists.
    """
    body = {"delta": -amount, "idempotency_key": key}
    await _to_auth(repo, key, f"user:{user_id}", "credit", f"/internal/users/{user_id}/credit", body)


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


def _delivery(op: OutboxOp, response: httpx.Response) -> Delivery:
    if response.status_code < 300:
        return Delivery(Outcome.DONE)
    error = f"HTTP {response.status_code}: {response.text[:300]}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):  # a 404 from a proxy, say: a JSON list or string has no .get
        body = {}
    if response.status_code == 404:
        message = str(body.get("message", ""))
        if op.kind == "refund" and "escrow" in message:
            return Delivery(Outcome.DONE)  # the task never held anything: nothing to refund
        if body.get("code") == 1000 and "escrow" not in message and "does not exist" not in message:
            # The peer does not have this endpoint yet (see grow_value, deduct_credit): retried rarely.
            return Delivery(Outcome.RETRY, error, max_backoff=MISSING_ENDPOINT_BACKOFF)
        return Delivery(Outcome.REFUSED, error)
    if response.status_code >= 500 or response.status_code in (401, 403, 429):
        return Delivery(Outcome.RETRY, error)
    return Delivery(Outcome.REFUSED, error)


# OutboxOp has OutboxRow's columns, but mypy checks a type variable's bound against the Mapped[...]
# descriptors themselves, not the values they give an instance.
class Outbox(OutboxDrainer[OutboxOp]):  # type: ignore[type-var]
    name = "tasks outbox"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clients: dict[str, ServiceClient],
        interval: float,
        max_backoff: float,
    ) -> None:
        super().__init__(sessionmaker, interval=interval, batch=BATCH, max_backoff=max_backoff)
        self.clients = clients

    async def claim(self, session: AsyncSession, now: datetime, limit: int) -> list[OutboxOp]:
        return await TasksRepository(session).due_ops(now, limit)

    def destination(self, op: OutboxOp) -> str:
        return op.service

    async def send(self, op: OutboxOp) -> Delivery:
        try:
            response = await self.clients[op.service].request(op.method, op.path, json=op.body)
        except ServiceUnavailable as exc:
            return Delivery(Outcome.UNREACHABLE, f"{exc.message} ({exc.details})")
        return _delivery(op, response)

    def mark_done(self, op: OutboxOp, now: datetime) -> None:
        op.status, op.done_at = "done", now

    def mark_refused(self, op: OutboxOp) -> None:
        op.status = "failed"

    def describe(self, op: OutboxOp) -> str:
        return f"op {op.key} ({op.kind})"
