"""Issue 15: the tasks service dies after auth held a distribution's points and before the task recorded
them; the publisher then edits the reward and distributes again. The escrow holds what the edited task
needs (the stray hold counted, not doubled) and the publisher pays exactly that."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.helpers import eventually
from tests.tasks_api.conftest import image_files, published, task_body, total_points

QUESTIONS, SLOTS, FIRST_REWARD = 3, 2, 5


async def _kill(platform, name: str) -> None:
    """SIGKILL: no graceful shutdown, the open transaction is never committed."""
    process = platform.processes.pop(name)
    process.kill()
    process.wait()


async def _start(platform, name: str) -> None:
    platform.start_service(name)
    await platform.wait_ready(f"{platform.service_url(name)}/readyz", name)


async def _escrow(db, task_id: int) -> int | None:
    return await db.fetchval("SELECT balance FROM auth.escrows WHERE id = $1", f"task:{task_id}")


async def _distribute_dying_after_hold(platform, backing, db, publisher, task_id: int) -> None:
    """Distributes with the tasks service killed once auth committed the hold: the tasks service's
    own writes after the hold wait on a lock the test holds, so the kill lands between the two."""
    blocker = await asyncpg.connect(backing.database_url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE tasks.outbox IN SHARE MODE")  # blocks inserts, not reads
        distributing = asyncio.create_task(publisher.client.post(f"/task/distribute/{task_id}"))

        async def hold_or_answer() -> int | None:
            held = await db.fetchval(
                "SELECT count(*) FROM auth.ledger_entries WHERE kind = 'escrow_hold' AND target = $1",
                f"escrow:task:{task_id}",
            )
            return held if held or distributing.done() else None

        held = await eventually(hold_or_answer, timeout=30, what="the escrow hold (or the distribute's answer)")
        assert held == 1, (await distributing).text if distributing.done() else f"{held} holds"
        await _kill(platform, "tasks")
        await transaction.rollback()
        r = await distributing
        assert r.status_code >= 500, r.text  # the client never heard that it worked
    finally:
        await blocker.close()
        if "tasks" not in platform.processes:
            await _start(platform, "tasks")


@pytest.mark.parametrize("new_reward", [6, 4], ids=["raised", "lowered"])
async def test_edit_after_interrupted_distribute_holds_exactly_what_the_task_needs(
    platform, backing, people, admin, db, new_reward
):
    publisher = await people.manager()
    await people.fund(publisher, 100)  # 1000 points
    before = await total_points(db)
    body = task_body(image_files(QUESTIONS), reward_per_q=FIRST_REWARD, distribute_user_num=SLOTS)
    task_id = await published(admin, publisher, body, distribute=False)
    stray = FIRST_REWARD * QUESTIONS * SLOTS

    await _distribute_dying_after_hold(platform, backing, db, publisher, task_id)
    row = await db.fetchrow("SELECT status, held_amount FROM tasks.tasks WHERE id = $1", task_id)
    assert (row["status"], row["held_amount"]) == ("created", 0)
    assert await _escrow(db, task_id) == stray
    assert await people.score(publisher.user_id) == 1000 - stray

    # The task is still `created`: the publisher edits its reward, the admin checks it again.
    r = await publisher.client.put(f"/task/{task_id}", json={**body, "reward_per_q": new_reward})
    assert r.json()["code"] == 0, r.text
    r = await admin.post(f"/task/check_task/{task_id}", json={"result": "accept"})
    assert r.json()["code"] == 0, r.text
    r = await publisher.client.post(f"/task/distribute/{task_id}")
    assert r.status_code == 200 and r.json()["code"] == 0, r.text

    needed = new_reward * QUESTIONS * SLOTS
    assert await db.fetchval("SELECT held_amount FROM tasks.tasks WHERE id = $1", task_id) == needed
    assert await _escrow(db, task_id) == needed
    assert await people.score(publisher.user_id) == 1000 - needed
    assert await total_points(db) == before
    moves = await db.fetch(
        "SELECT kind, amount FROM auth.ledger_entries WHERE $1 IN (source, target) ORDER BY id",
        f"escrow:task:{task_id}",
    )
    difference = ("escrow_hold", needed - stray) if needed > stray else ("escrow_refund", stray - needed)
    assert [(m["kind"], m["amount"]) for m in moves] == [("escrow_hold", stray), difference]

    # A repeated distribute is refused and moves nothing.
    r = await publisher.client.post(f"/task/distribute/{task_id}")
    assert r.json()["code"] != 0, r.text
    assert await _escrow(db, task_id) == needed
    assert await people.score(publisher.user_id) == 1000 - needed
