"""Points are conserved whatever fails between the steps of a task's life: auth stopped (its calls fail
with 503), the tasks service restarted with payouts pending, and a hold replayed as after a commit that
failed. At the end every annotator was paid exactly once and the escrow is empty."""

from __future__ import annotations

import httpx

from shared.http import ServiceClient
from tests.helpers import eventually
from tests.tasks_api.conftest import (
    answer_all,
    image_files,
    published,
    settled,
    task_body,
    total_points,
)


async def _restart(platform, name: str) -> None:
    platform.stop_service(name)
    platform.start_service(name)
    await platform.wait_ready(f"{platform.service_url(name)}/readyz", name)


async def _retrying(call) -> httpx.Response:
    """What a client does with a 503: try again a moment later."""

    async def answered() -> httpx.Response | None:
        response = await call()
        return None if response.status_code == 503 else response

    return await eventually(answered, timeout=5, interval=0.25, what="an answer other than 503")


async def test_points_are_conserved_across_failures(platform, people, admin, db):
    publisher = await people.manager()
    await people.fund(publisher, 100)  # 1000 points
    a, b, c = await people.annotators(3)
    before = await total_points(db)
    reward, questions, slots = 7, 3, 2
    held = reward * questions * slots
    task_id = await published(
        admin,
        publisher,
        task_body(image_files(questions), reward_per_q=reward, distribute_user_num=slots),
        distribute=False,
    )
    auth = ServiceClient("auth", platform.service_url("auth"), "tasks", platform.secret)
    try:
        # 1. Auth is down: distribution fails with 503 and nothing is held or recorded.
        platform.stop_service("auth")
        r = await publisher.client.post(f"/task/distribute/{task_id}")
        assert (r.status_code, r.json()["code"]) == (503, 1002), r.text
        assert await db.fetchval("SELECT status FROM tasks.tasks WHERE id = $1", task_id) == "created"
        platform.start_service("auth")
        await platform.wait_ready(f"{platform.service_url('auth')}/readyz", "auth")

        # 2. A hold that reached auth although the distribution's commit failed: the next distribute
        #    sends the same key, and auth moves nothing twice.
        r = await auth.request(
            "POST",
            "/internal/escrow/hold",
            json={
                "escrow_id": f"task:{task_id}",
                "user_id": publisher.user_id,
                "amount": held,
                "idempotency_key": f"task:{task_id}:hold:{held}",
            },
        )
        assert r.status_code == 200, r.text
        r = await _retrying(lambda: publisher.client.post(f"/task/distribute/{task_id}"))
        assert r.json()["code"] == 0, r.text
        assert await db.fetchval("SELECT balance FROM auth.escrows WHERE id = $1", f"task:{task_id}") == held
        assert await people.score(publisher.user_id) == 1000 - held

        for member in (a, b):
            assert (await member.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
            await answer_all(member, task_id, {q: "cat" for q in range(1, questions + 1)})

        # 3. Auth is down while the publisher reviews: the decisions are recorded, the payout waits.
        platform.stop_service("auth")
        r = await publisher.client.post(f"/review/accept/{task_id}/{a.user_id}")
        assert r.json() == {"code": 0, "message": "succeed", "data": {"paid": 21, "task_state": "distributed"}}
        assert (await publisher.client.post(f"/review/refuse/{task_id}/{b.user_id}")).json()["code"] == 0

        async def payout_attempted() -> bool:
            attempts = await db.fetchval(
                "SELECT attempts FROM tasks.outbox WHERE key = $1", f"task:{task_id}:user:{a.user_id}:pay"
            )
            return bool(attempts)

        await eventually(payout_attempted, timeout=5, what="an attempt at a's payout")
        assert (
            await db.fetchval("SELECT status FROM tasks.outbox WHERE key = $1", f"task:{task_id}:user:{a.user_id}:pay")
            == "pending"
        )

        # 4. The tasks service restarts with the payout pending; then auth comes back.
        await _restart(platform, "tasks")
        platform.start_service("auth")
        await platform.wait_ready(f"{platform.service_url('auth')}/readyz", "auth")
        await settled(db, task_id)
        assert await people.score(a.user_id) == 21

        # 5. A replayed payout (a drainer that crashed before marking it done) moves nothing.
        r = await auth.request(
            "POST",
            "/internal/escrow/payout",
            json={
                "escrow_id": f"task:{task_id}",
                "user_id": a.user_id,
                "amount": 21,
                "idempotency_key": f"task:{task_id}:user:{a.user_id}:pay",
            },
        )
        assert r.status_code == 200 and r.json()["data"]["balance"] == held - 21

        # 6. Redistribute (B's refused work), C labels with a restart of the tasks service in between.
        r = await _retrying(lambda: publisher.client.post(f"/task/redistribute/{task_id}"))
        assert r.json()["code"] == 0, r.text
        assert (await c.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
        await answer_all(c, task_id, {1: "cat"})
        await _restart(platform, "tasks")
        r = await _retrying(lambda: c.client.post(f"/task/upload_res/{task_id}/2", json={"result": "dog"}))
        assert r.json()["code"] == 0, r.text
        await answer_all(c, task_id, {3: "cat"})
        platform.stop_service("auth")
        r = await publisher.client.post(f"/review/accept/{task_id}/{c.user_id}")
        assert r.json()["data"] == {"paid": 21, "task_state": "finished"}
        platform.start_service("auth")
        await platform.wait_ready(f"{platform.service_url('auth')}/readyz", "auth")
        ops = await settled(db, task_id)
    finally:
        if "auth" not in platform.processes:
            platform.start_service("auth")
            await platform.wait_ready(f"{platform.service_url('auth')}/readyz", "auth")
        await auth.aclose()

    assert [(o["kind"], o["status"]) for o in ops] == [("payout", "done"), ("payout", "done"), ("refund", "done")]
    assert await total_points(db) == before
    assert [await people.score(m.user_id) for m in (a, b, c)] == [21, 0, 21]
    assert await people.score(publisher.user_id) == 1000 - 42
    assert await db.fetchval("SELECT balance FROM auth.escrows WHERE id = $1", f"task:{task_id}") == 0
    payouts = await db.fetch(
        "SELECT target, amount FROM auth.ledger_entries WHERE kind = 'escrow_payout' AND source = $1 ORDER BY id",
        f"escrow:task:{task_id}",
    )
    assert [(p["target"], p["amount"]) for p in payouts] == [(f"user:{a.user_id}", 21), (f"user:{c.user_id}", 21)]
    holds = await db.fetchval(
        "SELECT count(*) FROM auth.ledger_entries WHERE kind = 'escrow_hold' AND target = $1", f"escrow:task:{task_id}"
    )
    assert holds == 1
