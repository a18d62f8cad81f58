"""Races: a hundred annotators for a few `toall` slots, one annotator accepting twice at once, and one
answer submitted several times at once."""

from __future__ import annotations

import asyncio
from collections import Counter

from services.tasks.timeouts import TimeoutWorker
from shared.redis import Keys
from tests.tasks_api.conftest import image_files, published, task_body


async def test_hundred_annotators_race_for_five_slots(people, admin, db):
    publisher = await people.manager()
    await people.fund(publisher, 10)
    crowd = await people.annotators(100, concurrency=6)
    task_id = await published(admin, publisher, task_body(image_files(2), distribute_user_num=5))

    responses = await asyncio.gather(*(m.client.post(f"/task/accept/{task_id}") for m in crowd))
    codes = Counter(r.json()["code"] for r in responses)
    assert codes == {0: 5, 31: 95}, codes
    winners = {m.user_id for m, r in zip(crowd, responses, strict=True) if r.json()["code"] == 0}
    rows = await db.fetch("SELECT user_id FROM tasks.assignments WHERE task_id = $1 AND current", task_id)
    assert {r["user_id"] for r in rows} == winners
    assert await db.fetchval("SELECT taken FROM tasks.tasks WHERE id = $1", task_id) == 5

    # One annotator submitting the same answer ten times at once: one is stored, nine are refused.
    winner = next(m for m in crowd if m.user_id in winners)
    responses = await asyncio.gather(
        *(winner.client.post(f"/task/upload_res/{task_id}/1", json={"result": "cat"}) for _ in range(10))
    )
    assert Counter((r.status_code, r.json()["code"]) for r in responses) == {(200, 0): 1, (400, 50): 9}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tasks.answers WHERE task_id = $1 AND user_id = $2", task_id, winner.user_id
        )
        == 1
    )
    assert (
        await db.fetchval(
            "SELECT answered FROM tasks.assignments WHERE task_id = $1 AND user_id = $2", task_id, winner.user_id
        )
        == 1
    )

    # One annotator accepting one task five times at once: accepted once.
    second = await published(admin, publisher, task_body(image_files(1), distribute_user_num=3))
    loser = next(m for m in crowd if m.user_id not in winners)
    responses = await asyncio.gather(*(loser.client.post(f"/task/accept/{second}") for _ in range(5)))
    assert Counter(r.json()["code"] for r in responses) == {0: 1, 32: 4}
    assert await db.fetchval("SELECT taken FROM tasks.tasks WHERE id = $1", second) == 1


async def test_one_timeout_worker_per_deployment(platform, redis, backing):
    """However many replicas run, one holds the worker's Redis lock; it renews it, and another takes
    over when the holder stops renewing (its lock expires)."""
    keys = Keys(f"{backing.namespace}-worker-test")  # not the running service's lock
    first, second = (TimeoutWorker(None, redis, keys, 1, 0.5) for _ in range(2))  # type: ignore[arg-type]
    assert await first.leads() and not await second.leads()
    await asyncio.sleep(0.3)
    assert await first.leads() and not await second.leads()  # renewed
    await asyncio.sleep(0.7)  # the first stopped renewing: its lock expired
    assert await second.leads() and not await first.leads()
    # The running service's worker holds the deployment's lock.
    assert await redis.get(f"{backing.namespace}:tasks:timeout-worker")
