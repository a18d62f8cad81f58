"""The outbox drainer: calls to other services that must follow a commit, sent until they are settled.

A request that must call another service writes an outbox row in its own transaction, so the call is
recorded exactly when the change that causes it is (and never if that transaction rolls back); after the
commit it pokes the drainer. The drainer claims the rows that are due, sends each, and records what came
of it in the transaction that claimed them:

- done: the peer took it;
- refused: the peer will never take it (a 4xx that a retry cannot change): kept with its answer, not retried;
- retry: tried again after a back-off that doubles from `interval` up to `max_backoff` (a row may ask for a
  longer cap, e.g. a peer that lacks the endpoint for now);
- unreachable: a retry that also tells the drainer the peer is down, so the rest of this round's rows for
  the same peer wait for the next round untouched instead of each waiting for its own time-out.

It drains again at once while a round settled anything (and so may have unblocked more), and otherwise
sleeps for `interval` or until poked.

Replicas: every replica drains, and they share the work. `claim` locks the rows it returns with
`FOR UPDATE SKIP LOCKED`, and the lock is held until their outcome is committed: a row another replica
is sending is skipped, and once that replica commits, the row is no longer due (PostgreSQL re-checks a
locked row's conditions against its newest version), so no row is sent by two replicas. This was chosen
over one elected drainer because nothing waits for a dead leader's lease to expire, no Redis is needed
for correctness, and a slow peer does not stall the whole deployment's outbox. The one double send left
is a replica that dies after sending and before committing: its rows are sent again, which is why every
call carries an idempotency key its peer recognises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

ERROR_LENGTH = 500


class OutboxRow(Protocol):
    """The columns the drainer keeps on every outbox row (the rest is the source's)."""

    attempts: int
    next_attempt_at: datetime
    last_error: str | None


Row = TypeVar("Row", bound=OutboxRow)


class Outcome(Enum):
    DONE = "done"
    REFUSED = "refused"
    RETRY = "retry"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Delivery:
    """What came of sending one row."""

    outcome: Outcome
    error: str = ""
    max_backoff: float | None = None  # a retry that may wait longer than the drainer's usual cap


class OutboxDrainer(ABC, Generic[Row]):
    """Drains one outbox table; a subclass says how rows are claimed, sent and marked."""

    name = "outbox"  # for the logs

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float,
        batch: int,
        max_backoff: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.interval = interval
        self.batch = batch
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()

    # What a subclass provides -------------------------------------------------------------------

    @abstractmethod
    async def claim(self, session: AsyncSession, now: datetime, limit: int) -> Sequence[Row]:
        """Up to `limit` rows due at `now`, locked `FOR UPDATE SKIP LOCKED`, in the order to send them."""

    @abstractmethod
    def destination(self, row: Row) -> str:
        """The peer `row` goes to (rows for an unreachable peer wait for the next round)."""

    @abstractmethod
    async def send(self, row: Row) -> Delivery:
        """Sends `row` once; what came of it."""

    @abstractmethod
    def mark_done(self, row: Row, now: datetime) -> None: ...

    @abstractmethod
    def mark_refused(self, row: Row) -> None:
        """Never to be sent again (`row.last_error` says why)."""

    def describe(self, row: Row) -> str:
        return repr(row)

    # The loop -----------------------------------------------------------------------------------

    def poke(self) -> None:
        """Drain now rather than at the next interval (rows were just committed)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                busy = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop outlives any one failure (a database restart, a bug in one row)
                log.exception("%s: drain round failed", self.name)
                busy = False
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def drain_once(self, now: datetime | None = None) -> bool:
        """One round: sends the due rows (at most one batch); True when any was settled (done or refused)."""
        now = now or datetime.now(UTC)
        settled = False
        async with self.sessionmaker.begin() as session:
            rows = await self.claim(session, now, self.batch)
            unreachable: set[str] = set()
            for row in rows:
                destination = self.destination(row)
                if destination in unreachable:
                    continue  # not attempted: it stays due, with its attempts and back-off as they were
                delivery = await self.send(row)
                row.attempts += 1
                settled = self._record(row, delivery) or settled
                if delivery.outcome is Outcome.UNREACHABLE:
                    unreachable.add(destination)
        return settled

    def _record(self, row: Row, delivery: Delivery) -> bool:
        now = datetime.now(UTC)
        if delivery.outcome is Outcome.DONE:
            row.last_error = None
            self.mark_done(row, now)
            return True
        row.last_error = delivery.error[:ERROR_LENGTH]
        if delivery.outcome is Outcome.REFUSED:
            self.mark_refused(row)
            log.warning("%s: %s refused for good: %s", self.name, self.describe(row), delivery.error)
            return True
        cap = delivery.max_backoff if delivery.max_backoff is not None else self.max_backoff
        delay = min(cap, self.interval * 2 ** min(row.attempts - 1, 20))
        row.next_attempt_at = now + timedelta(seconds=delay)
        log.warning("%s: %s will be retried in %.1fs: %s", self.name, self.describe(row), delay, delivery.error)
        return False
