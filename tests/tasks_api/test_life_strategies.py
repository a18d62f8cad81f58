"""`order`, `smart` and agent distribution, auto acceptance against standard answers, time-outs and
redistribution, and deleting a task (its escrow goes back)."""

from __future__ import annotations

from tests.helpers import eventually
from tests.tasks_api.conftest import (
    answer_all,
    image_files,
    published,
    settled,
    task_body,
    task_view,
)


def _current(view: dict) -> dict[int, dict]:
    return {u["tag_user"]["user_id"]: u for u in view["current_tag_user_list"]}


async def test_order_offers_the_next_annotators_and_replaces_a_refusal(people, admin, db):
    publisher = await people.manager()
    await people.fund(publisher, 50)
    a, b, c = await people.annotators(3)
    # Round robin: start the deployment's cursor just before these three (the newest annotators).
    await db.execute(
        "INSERT INTO tasks.cursors (name, position) VALUES ('order', $1) "
        "ON CONFLICT (name) DO UPDATE SET position = $1",
        a.user_id - 1,
    )
    task_id = await published(
        admin, publisher, task_body(image_files(2), strategy="order", distribute_user_num=2, reward_per_q=3)
    )
    view = await task_view(publisher.client, task_id)
    assert set(_current(view)) == {a.user_id, b.user_id}
    assert {u["state"] for u in view["current_tag_user_list"]} == {"not_handle"}
    assert all(u["accepted_at"] is None for u in view["current_tag_user_list"])
    # Offered, not open to anyone: C may not take it, and it is not in anyone's free list.
    assert (await c.client.post(f"/task/accept/{task_id}")).json()["code"] == 18
    assert task_id not in [t["task_id"] for t in (await c.client.get("/task/get_free_tasks")).json()["data"]]
    assert task_id in [t["task_id"] for t in (await b.client.get("/task/get_my_tasks")).json()["data"]]

    # B refuses: the next annotator in order (C) gets the offer; B is in the past list.
    assert (await b.client.post(f"/task/refuse/{task_id}")).json()["data"] == {"replaced": 1}
    view = await task_view(publisher.client, task_id)
    assert set(_current(view)) == {a.user_id, c.user_id}
    assert [u["user_id"] for u in view["past_tag_user_list"]] == [b.user_id]
    assert (await b.client.get(f"/task/{task_id}")).json()["code"] == 16
    assert task_id not in [t["task_id"] for t in (await b.client.get("/task/get_my_tasks")).json()["data"]]

    for member in (a, c):
        assert (await member.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
        await answer_all(member, task_id, {1: "cat", 2: "dog"})
        assert (await publisher.client.post(f"/review/accept/{task_id}/{member.user_id}")).json()["code"] == 0
    await settled(db, task_id)
    assert (await task_view(publisher.client, task_id))["task_state"] == "finished"
    assert [await people.score(m.user_id) for m in (a, b, c)] == [6, 0, 6]


async def test_auto_acceptance_then_smart_prefers_the_accurate(people, admin, db):
    publisher = await people.manager()
    await people.fund(publisher, 50)
    good, bad, banned = await people.annotators(3)

    # Standard answers for 6 of 8 questions (a CSV of filename,tag); auto acceptance uses them.
    stdans = "filename,tag\n" + "".join(f"{i}.jpg,{'cat' if i % 2 else 'dog'}\n" for i in range(1, 7))
    r = await publisher.client.post("/review/upload_stdans", files={"file": ("std.csv", stdans, "text/csv")})
    assert r.json()["code"] == 0, r.text
    std_tag = r.json()["data"]["tag"]
    r = await publisher.client.post(
        "/review/upload_stdans", files={"file": ("std.csv", "filename,tag,extra\n1.jpg,cat,x\n", "text/csv")}
    )
    assert (r.json()["code"], r.json()["message"]) == (20, "field error")
    body = task_body(image_files(8), accept_method="auto", stdans_tag=std_tag, distribute_user_num=2, reward_per_q=1)
    task_id = await published(admin, publisher, body)
    truth = {i: "cat" if i % 2 else "dog" for i in range(1, 9)}
    for member in (good, bad):
        assert (await member.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    await answer_all(good, task_id, truth)
    await answer_all(bad, task_id, {q: "bird" for q in truth})
    view = await task_view(publisher.client, task_id)
    states = {uid: u["state"] for uid, u in _current(view).items()}
    assert states == {good.user_id: "review_accepted", bad.user_id: "review_refused"}
    await settled(db, task_id)
    assert await people.score(good.user_id) == 8 and await people.score(bad.user_id) == 0

    # Smart distribution: the accurate annotator first; never the banned one or the inaccurate one
    # ahead of them. One slot, so the choice is the best-ranked eligible annotator.
    assert (await admin.post(f"/user/ban_user/{banned.user_id}")).json()["code"] == 0
    smart_id = await published(admin, publisher, task_body(image_files(2), strategy="smart", reward_per_q=2))
    assert set(_current(await task_view(publisher.client, smart_id))) == {good.user_id}
    assert (await good.client.post(f"/task/accept/{smart_id}")).json()["code"] == 0
    await answer_all(good, smart_id, {1: "cat", 2: "cat"})
    assert (await publisher.client.post(f"/review/accept/{smart_id}/{good.user_id}")).json()["code"] == 0
    await settled(db, smart_id)
    assert await people.score(good.user_id) == 8 + 4
    assert (await admin.post(f"/user/unban_user/{banned.user_id}")).json()["code"] == 0


async def test_agent_hands_the_task_to_annotators(people, admin, db, mailbox):
    publisher = await people.manager()
    await people.fund(publisher, 50)
    agent = await people.agent(mailbox)
    x, y = await people.annotators(2)
    task_id = await published(
        admin, publisher, task_body(image_files(2), distribute_user_num=1, reward_per_q=4), distribute=False
    )
    r = await publisher.client.post(f"/task/to_agent/{task_id}", json={"agent_id": str(x.user_id)})
    assert r.json()["code"] == 1005  # not an agent
    r = await publisher.client.post(f"/task/to_agent/{task_id}", json={"agent_id": str(agent.user_id)})
    assert r.json()["code"] == 0 and r.json()["message"] == "success", r.text
    assert await people.score(publisher.user_id) == 500 - 8
    delegated = (await agent.client.get("/task/get_my_tasks")).json()["data"]
    entry = next(t for t in delegated if t["task_id"] == task_id)
    assert entry["current_tag_user_num"] == 0 and entry["agent"]["user_id"] == agent.user_id
    # Only the agent distributes it, one annotator at a time, up to distribute_user_num.
    r = await publisher.client.post(f"/task/distribute_to_user/{task_id}/{x.user_id}")
    assert r.json()["code"] == 15
    assert (await x.client.post(f"/task/accept/{task_id}")).json()["code"] == 18
    r = await agent.client.post(f"/task/distribute_to_user/{task_id}/{x.user_id}")
    assert r.json()["code"] == 0, r.text
    assert (await agent.client.post(f"/task/distribute_to_user/{task_id}/{y.user_id}")).json()["code"] == 31
    assert (await x.client.post(f"/task/refuse/{task_id}")).json()["code"] == 0
    assert (await agent.client.post(f"/task/distribute_to_user/{task_id}/{x.user_id}")).json()["code"] == 1005
    assert (await agent.client.post(f"/task/distribute_to_user/{task_id}/{y.user_id}")).json()["code"] == 0
    assert (await y.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    await answer_all(y, task_id, {1: "dog", 2: "dog"})
    assert (await publisher.client.post(f"/review/accept/{task_id}/{y.user_id}")).json()["code"] == 0
    await settled(db, task_id)
    assert await people.score(y.user_id) == 8
    assert (await task_view(agent.client, task_id))["task_state"] == "finished"


async def test_time_out_redistribute_and_delete_refunds(people, admin, db):
    publisher = await people.manager()
    await people.fund(publisher, 50)
    slow, quick, late = await people.annotators(3)
    body = task_body(image_files(2), distribute_user_num=2, reward_per_q=5, time_limit_per_q=1, total_time_limit=3)
    task_id = await published(admin, publisher, body)
    for member, answers in ((quick, {1: "cat", 2: "cat"}), (slow, {1: "cat"})):
        assert (await member.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
        await answer_all(member, task_id, answers)
    # The worker marks `slow` as timed out once total_time_limit has passed.

    async def slow_timed_out() -> dict[int, str] | None:
        states = {uid: u["state"] for uid, u in _current(await task_view(publisher.client, task_id)).items()}
        return states if states[slow.user_id] == "timeout" else None

    states = await eventually(slow_timed_out, timeout=20, interval=0.2, what="slow's time-out")
    assert states == {slow.user_id: "timeout", quick.user_id: "finished"}
    assert (await slow.client.post(f"/task/upload_res/{task_id}/2", json={"result": "cat"})).json()["code"] == 16
    # While `quick` awaits review the task may not be deleted; the pool is full until redistribute.
    assert (await publisher.client.delete(f"/task/{task_id}")).json()["code"] == 22
    assert (await late.client.post(f"/task/accept/{task_id}")).json()["code"] == 31
    r = await publisher.client.post(f"/task/redistribute/{task_id}")
    assert r.json()["data"] == {"removed": 1, "distributed": 0, "vacancies": 1}
    assert (await late.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    assert (await publisher.client.post(f"/review/accept/{task_id}/{quick.user_id}")).json()["code"] == 0
    assert (await late.client.post(f"/task/refuse/{task_id}")).json()["code"] == 0

    # Nobody works on it any more: the publisher deletes it and gets back what was not paid out.
    assert (await publisher.client.delete(f"/task/{task_id}")).json()["code"] == 0
    ops = await settled(db, task_id)
    assert [(o["kind"], o["status"]) for o in ops] == [("payout", "done"), ("refund", "done")]
    assert await people.score(quick.user_id) == 10
    assert await people.score(publisher.user_id) == 500 - 10
    assert (await publisher.client.get(f"/task/{task_id}")).json()["code"] == 11
    assert task_id not in [t["task_id"] for t in (await admin.get("/task/get_all_tasks")).json()["data"]]
