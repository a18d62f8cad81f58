"""The whole life of a `toall` task through the gateway: a requester the admin checks publishes it, the
admin checks the task, distribution holds the reward in escrow, annotators take slots (or refuse), label,
get reviewed and paid; the publisher downloads the results and reports; the admin settles reports."""

from __future__ import annotations

import csv
import io

from tests.conftest import unique
from tests.helpers import eventually, user_client
from tests.tasks_api.conftest import (
    answer_all,
    settled,
    task_body,
    task_view,
    upload_texts,
)


async def test_toall_task_from_publishing_to_payment(platform, mailbox, people, admin, db):
    publisher, account = await user_client(platform, mailbox, "demand")
    texts = ["a cat\non a mat", "a dog", "a bird in the sky"]
    files = await upload_texts(publisher, texts)
    body = task_body(files, reward_per_q=5, distribute_user_num=2, strategy="toall")

    # An unchecked requester may not publish; the admin checks them.
    r = await publisher.post("/task/", json=body)
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (400, 35, "user not checked")
    assert (await admin.post(f"/user/check_user/{account.user_id}")).json()["code"] == 0
    r = await publisher.post("/task/", json=body)
    assert r.json()["code"] == 0, r.text
    task_id = r.json()["data"]["task_id"]
    view = await task_view(publisher, task_id)
    assert (view["q_num"], view["check_result"], view["is_distributed"]) == (3, "wait", False)
    assert view["publisher"]["user_id"] == account.user_id

    # Distribution waits for the admin's check (and needs the points).
    r = await publisher.post(f"/task/distribute/{task_id}")
    assert (r.json()["code"], r.json()["message"]) == (34, "task not checked")
    listed = (await admin.get("/task/get_all_tasks")).json()["data"]
    mine = next(t for t in listed if t["task_id"] == task_id)
    assert (mine["check_result"], mine["task_name"]) == ("wait", body["task_name"])
    assert (await admin.post(f"/task/check_task/{task_id}", json={"result": "accept"})).json()["code"] == 0
    assert (await admin.post(f"/task/check_task/{task_id}", json={"result": "refuse"})).json()["code"] == 51
    r = await publisher.post(f"/task/distribute/{task_id}")
    assert (r.json()["code"], r.json()["message"]) == (10, "score not enough")
    await people.fund_client(publisher, 100)  # 1000 points
    assert (await publisher.get(f"/task/is_distributed/{task_id}")).json()["data"] == {"is_distributed": False}
    r = await publisher.post(f"/task/distribute/{task_id}")
    assert r.json()["code"] == 0, r.text
    assert (await publisher.get(f"/task/is_distributed/{task_id}")).json()["data"] == {"is_distributed": True}
    assert await people.score(account.user_id) == 1000 - 5 * 3 * 2
    assert await db.fetchval("SELECT balance FROM auth.escrows WHERE id = $1", f"task:{task_id}") == 30
    assert (await publisher.post(f"/task/distribute/{task_id}")).json()["code"] == 23

    a, b, c, d, e = await people.annotators(5)
    free = (await c.client.get("/task/get_free_tasks")).json()["data"]
    assert task_id in [t["task_id"] for t in free]
    # Refusing a pool task hides it, and the past list never gets it back.
    assert (await c.client.post(f"/task/refuse/{task_id}")).json()["code"] == 0
    assert task_id not in [t["task_id"] for t in (await c.client.get("/task/get_free_tasks")).json()["data"]]
    assert (await c.client.post(f"/task/accept/{task_id}")).json()["code"] == 18

    accepted = (await a.client.post(f"/task/accept/{task_id}")).json()
    assert accepted["code"] == 0 and (accepted["data"]["q_num"], accepted["data"]["state"]) == (3, "accepted")
    assert accepted["data"]["deadline"] - accepted["data"]["accepted_at"] == body["total_time_limit"]
    assert (await a.client.post(f"/task/accept/{task_id}")).json()["code"] == 32
    assert (await b.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    assert (await d.client.post(f"/task/accept/{task_id}")).json()["code"] == 31

    # A labels: the question's text by lines, start once, answer once.
    question = (await a.client.get(f"/task/{task_id}/1")).json()["data"]
    assert question["data"] == ["a cat", "on a mat"] and question["tag_type"] == ["cat", "dog", "bird"]
    assert (await a.client.post(f"/task/startquestion/{task_id}/1")).json()["code"] == 0
    r = await a.client.post(f"/task/startquestion/{task_id}/1")
    assert (r.json()["code"], r.json()["message"]) == (59, "already start")
    info = (await a.client.get(f"/task/taginfo/{task_id}")).json()["data"]
    assert [(i["q_id"], i["state"], i["q_type"]) for i in info] == [
        (1, "started", "text"),
        (2, "notstarted", "text"),
        (3, "notstarted", "text"),
    ]
    assert info[2]["q_data"] == "a bird in the sky"
    await answer_all(a, task_id, {1: "cat", 2: "dog", 3: "bird"})
    r = await a.client.post(f"/task/upload_res/{task_id}/2", json={"result": "cat"})
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (400, 50, "no resubmit")
    assert [i["state"] for i in (await a.client.get(f"/task/taginfo/{task_id}")).json()["data"]] == ["finished"] * 3
    # An annotator sees their own answer only.
    answers = (await a.client.get(f"/task/{task_id}/1")).json()["data"]["result"]
    assert [(x["tag_user"]["user_id"], x["tag_res"]) for x in answers] == [(a.user_id, "cat")]

    # B answers one question and gives the task back: the slot returns to the pool, D takes it.
    await answer_all(b, task_id, {1: "dog"})
    assert (await b.client.post(f"/task/refuse/{task_id}")).json()["code"] == 0
    assert (await b.client.post(f"/task/upload_res/{task_id}/2", json={"result": "dog"})).json()["code"] == 16
    assert (await d.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    await answer_all(d, task_id, {1: "dog", 2: "dog", 3: "dog"})

    view = await task_view(publisher, task_id)
    current = {u["tag_user"]["user_id"]: u for u in view["current_tag_user_list"]}
    assert set(current) == {a.user_id, d.user_id}
    assert current[a.user_id]["state"] == "finished" and current[a.user_id]["is_finished"]
    assert {u["user_id"] for u in view["past_tag_user_list"]} == {b.user_id, c.user_id}
    assert {(p["tag_user"]["user_id"], p["q_id"]) for p in view["progress"]} == {(a.user_id, 3), (d.user_id, 3)}
    for entry in [*view["current_tag_user_list"], view["publisher"]]:
        assert "password" not in (entry.get("tag_user") or entry) and "email" not in (entry.get("tag_user") or entry)

    # Review: a full check of A, accept (paid 5 x 3); refuse D; the whole download waits for reviews.
    r = await publisher.post(f"/review/manual_check/{task_id}/{a.user_id}", json={"check_method": "all"})
    q_info = r.json()["data"]["q_info"]
    assert [(q["q_id"], q["result"]) for q in q_info] == [(1, "cat"), (2, "dog"), (3, "bird")]
    assert q_info[0]["data"] == "a cat\non a mat"
    sample = (
        await publisher.post(f"/review/manual_check/{task_id}/{a.user_id}", json={"check_method": "select"})
    ).json()["data"]["q_info"]
    assert len(sample) == 1 and sample[0]["q_id"] in (1, 2, 3)
    r = await publisher.get(f"/review/download/{task_id}")
    assert (r.json()["code"], r.json()["message"]) == (25, "review not finish")
    assert (await publisher.post(f"/review/accept/{task_id}/{a.user_id}")).json()["data"]["paid"] == 15
    assert (await publisher.post(f"/review/accept/{task_id}/{a.user_id}")).json()["code"] == 1005
    assert (await publisher.post(f"/review/refuse/{task_id}/{d.user_id}")).json()["code"] == 0

    # Redistribute replaces the refused work: D joins the past list, E takes the slot.
    assert (await e.client.post(f"/task/accept/{task_id}")).json()["code"] == 31
    r = await publisher.post(f"/task/redistribute/{task_id}")
    assert r.json()["data"]["removed"] == 1, r.text
    assert (await d.client.post(f"/task/accept/{task_id}")).json()["code"] == 18
    assert (await e.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    await answer_all(e, task_id, {1: "cat", 2: "cat", 3: "bird"})
    r = await publisher.post(f"/review/accept/{task_id}/{e.user_id}")
    assert r.json()["data"] == {"paid": 15, "task_state": "finished"}

    ops = await settled(db, task_id)
    assert sorted((o["kind"], o["status"]) for o in ops) == [("payout", "done"), ("payout", "done"), ("refund", "done")]
    assert await people.score(a.user_id) == 15 and await people.score(e.user_id) == 15
    assert await people.score(d.user_id) == 0
    assert await people.score(account.user_id) == 1000 - 30
    assert await db.fetchval("SELECT balance FROM auth.escrows WHERE id = $1", f"task:{task_id}") == 0
    tag_score = (await a.client.get(f"/user/userinfo/{a.user_id}")).json()["data"]["tag_score"]
    assert tag_score == 15

    # Downloads: one annotator's answers, and the whole task with the consolidated answer.
    rows = list(csv.DictReader(io.StringIO((await publisher.get(f"/review/download/{task_id}/{a.user_id}")).text)))
    assert [(r["q_id"], r["result"]) for r in rows] == [("1", "cat"), ("2", "dog"), ("3", "bird")]
    r = await publisher.get(f"/review/download/{task_id}")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    header = rows[0]
    assert header[:5] == ["q_id", "filename", "data_type", "data", "majority_answer"]
    by_q = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert (by_q["3"]["majority_answer"], by_q["3"]["majority_votes"]) == ("bird", "2")
    assert by_q["1"]["dawid_skene_answer"] == ""  # two answers: majority only
    assert set(by_q["annotator_accuracy"]) >= {f"{a.user_name} ({a.user_id})", f"{e.user_name} ({e.user_id})"}
    # Only the task's publisher (or an admin) downloads it.
    assert (await e.client.get(f"/review/download/{task_id}")).json()["code"] == 16

    # Reports: the publisher reports D, D reports the publisher; the admin accepts one and rejects one.
    reason = unique("copied answers ")
    assert (await publisher.post(f"/review/report/{task_id}/{d.user_id}", json={"reason": reason})).json()["code"] == 0
    r = await d.client.post(f"/review/report/{task_id}/{account.user_id}", json={"reason": "unfair review"})
    assert r.json()["code"] == 0
    assert (await c.client.post(f"/review/report/{task_id}/{a.user_id}", json={"reason": "x"})).json()["code"] == 34
    messages = [m for m in (await admin.get("/review/reportmessage")).json()["data"] if m["task_id"] == task_id]
    assert {(m["tagger_id"], m["reportee_id"], m["reason"]) for m in messages} == {
        (d.user_id, str(d.user_id), reason),
        (d.user_id, str(account.user_id), "unfair review"),
    }
    assert all(m["credit_score"] == 100 for m in messages)
    assert (await d.client.get("/review/reportmessage")).json()["code"] == 1006
    r = await admin.post(f"/review/acceptreport/{task_id}/{account.user_id}")
    assert r.json() == {"code": 0, "message": "succeed", "data": {"reports": 1}}
    credit = await db.fetchrow(
        "SELECT body, status FROM tasks.outbox WHERE kind = 'credit' AND path = $1",
        f"/internal/users/{d.user_id}/credit",
    )
    assert credit is not None and '"delta": -10' in credit["body"]

    async def credit_deducted() -> bool:  # the outbox delivers it to auth shortly after the commit
        return await db.fetchval("SELECT credit_score FROM auth.users WHERE id = $1", d.user_id) == 90

    await eventually(credit_deducted, what="the credit deduction in auth")
    assert (await admin.post(f"/review/rejectreport/{task_id}/{d.user_id}")).json()["code"] == 0
    r = await admin.post(f"/review/rejectreport/{task_id}/{d.user_id}")
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (404, 35, "report record not found")
    left = [m for m in (await admin.get("/review/reportmessage")).json()["data"] if m["task_id"] == task_id]
    assert left == []

    mine = (await publisher.get("/task/get_my_tasks")).json()["data"]
    assert next(t for t in mine if t["task_id"] == task_id)["task_state"] == "finished"
    assert (await admin.get("/task/get_my_tasks")).json()["code"] == 12
    given = (await a.client.get("/task/get_my_tasks")).json()["data"]
    assert next(t for t in given if t["task_id"] == task_id)["state"] == "review_accepted"
    await publisher.aclose()
