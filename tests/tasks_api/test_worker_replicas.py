"""The tasks service's background workers as two replicas run them, on a database of their own (the
platform's own workers would race them): the time-out worker expires each assignment once, and two
outbox drainers send each op once, each group's ops in the order they were written."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.tasks import outbox, timeouts
from services.tasks.models import Assignment, AssignmentState, OutboxOp, Task
from services.tasks.repository import TasksRepository
from shared.db import create_engine, create_sessionmaker
from shared.http import ServiceClient
from shared.redis import Keys
from tests.helpers import eventually
from tests.shared.databases import fresh_backing

OVERDUE = 240


@pytest_asyncio.fixture(loop_scope="session")
async def tasks_db(backing) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Keys]]:
    async with fresh_backing(backing, "tasks") as own:
        engine = create_engine(own.database_url, "tasks-test")
        try:
            yield create_sessionmaker(engine), Keys(own.namespace)
        finally:
            await engine.dispose()


async def _task_with_assignments(sessionmaker, deadlines: list[datetime | None]) -> int:
    async with sessionmaker.begin() as session:
        task = Task(
            publisher_id=1,
            task_name="overdue",
            task_type="image",
            reward_per_q=1,
            time_limit_per_q=1,
            total_time_limit=1,
            distribute_user_num=len(deadlines),
            accept_method="auto",
            strategy="toall",
            status="distributed",
        )
        session.add(task)
        await session.flush()
        session.add_all(
            Assignment(
                task_id=task.id,
                user_id=user_id,
                state=random.choice([AssignmentState.ACCEPTED, AssignmentState.NOT_HANDLE]),
                via="toall",
                deadline=deadline,
            )
            for user_id, deadline in enumerate(deadlines, start=1)
        )
        return task.id


async def _states(sessionmaker, task_id: int) -> Counter[str]:
    async with sessionmaker() as session:
        rows = await session.execute(select(Assignment.state).where(Assignment.task_id == task_id))
        return Counter(state for (state,) in rows)


async def test_two_timeout_workers_expire_each_assignment_once(tasks_db, backing, monkeypatch):
    sessionmaker, keys = tasks_db
    now = datetime.now(UTC)
    later = [now + timedelta(hours=1)] * 10  # still running: never expired
    task_id = await _task_with_assignments(sessionmaker, [now - timedelta(seconds=5)] * OVERDUE + later)
    monkeypatch.setattr(timeouts, "SCAN_BATCH", 7)  # many small transactions, interleaved
    redis = Redis.from_url(backing.redis_url, decode_responses=True)
    try:
        first, second = (timeouts.TimeoutWorker(sessionmaker, redis, keys, 0.05, 15) for _ in range(2))

        # Both scan at once (a leader whose lease ran out mid-scan and its successor): each overdue
        # assignment is marked by exactly one of them. (Two pooled connections first, so that neither
        # finishes while the other is still connecting.)
        await asyncio.gather(_states(sessionmaker, task_id), _states(sessionmaker, task_id))
        marked = await asyncio.gather(first.scan(), second.scan())
        together = Counter(marked[0] + marked[1])
        assert len(together) == OVERDUE and set(together.values()) == {1}
        assert marked[0] and marked[1], "both scanned, sharing the rows"
        states = await _states(sessionmaker, task_id)
        assert states.pop("timeout") == OVERDUE and sum(states.values()) == len(later)

        # Running as replicas do: only the lease holder scans, and it expires what falls due.
        second_task = await _task_with_assignments(sessionmaker, [now - timedelta(seconds=1)] * 30)
        before = first.timed_out, second.timed_out
        loops = [asyncio.create_task(w.run()) for w in (first, second)]
        try:

            async def expired() -> bool:
                return (await _states(sessionmaker, second_task)) == {"timeout": 30}

            await eventually(expired, timeout=10, what="the second task's assignments expired")
            await asyncio.sleep(0.3)  # a few more rounds: nothing left to mark twice
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        scanned = sorted([first.timed_out - before[0], second.timed_out - before[1]])
        assert scanned == [0, 30], scanned  # the leader marked them all, once; the other never scanned
        assert await redis.get(first.lease.key) is None  # the leader released the lease on its way out
    finally:
        await redis.aclose()


async def test_two_outbox_drainers_send_each_op_once_in_group_order(tasks_db):
    sessionmaker, _ = tasks_db
    groups, payouts = 12, 8
    async with sessionmaker.begin() as session:
        repo = TasksRepository(session)
        for task_id in range(1, groups + 1):
            for user_id in range(1, payouts + 1):
                await outbox.payout(repo, task_id, user_id, 3)
            await outbox.refund_rest(repo, task_id, "finished")

    sent: list[str] = []

    async def auth(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(random.uniform(0, 0.003))
        sent.append(json.loads(request.content)["idempotency_key"])
        return httpx.Response(200, json={"code": 0, "message": "ok", "data": {}})

    def drainer() -> outbox.Outbox:
        client = ServiceClient("auth", "http://auth.test", "tasks", "secret", transport=httpx.MockTransport(auth))
        return outbox.Outbox(sessionmaker, {"auth": client}, interval=0.05, max_backoff=1)

    first, second = drainer(), drainer()
    loops = [asyncio.create_task(d.run()) for d in (first, second)]
    try:

        async def drained() -> bool:
            async with sessionmaker() as session:
                statuses = await session.execute(select(OutboxOp.status))
                return {status for (status,) in statuses} == {"done"}

        await eventually(drained, timeout=30, what="every op done")
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for d in (first, second):
            await d.clients["auth"].aclose()

    assert len(sent) == len(set(sent)) == groups * (payouts + 1), Counter(sent).most_common(3)
    for task_id in range(1, groups + 1):
        order = [key for key in sent if key.startswith(f"task:{task_id}:")]
        expected = [f"task:{task_id}:user:{u}:pay" for u in range(1, payouts + 1)] + [f"task:{task_id}:refund:finished"]
        assert order == expected, order
