"""The whole life of a `toall` task through the gateway: a requester the admin checks publishes it, the
admin checks the task, distribution holds the reward in escrow, annotators take slots (or refuse), label,
get reviewed and paid; the publisher downloads the results and reports; the admin settles reports.

One task goes through every stage. Each stage is a module-scoped fixture that builds on the one before
and writes down what it saw (`Toall.seen`) when it saw it; each test checks one stage. So a test run
alone still has its stage reached, and what it checks does not depend on the stages run after it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest_asyncio

from tests.conftest import unique
from tests.helpers import Account, eventually, user_client
from tests.tasks_api.conftest import Member, answer_all, settled, task_body, task_view, upload_texts

TEXTS = ["a cat\non a mat", "a dog", "a bird in the sky"]


@dataclass
class Toall:
    publisher: httpx.AsyncClient
    account: Account
    body: dict[str, Any]
    task_id: int = 0
    crowd: list[Member] = field(default_factory=list)  # annotators a, b, c, d, e
    seen: dict[str, Any] = field(default_factory=dict)


def code(response: httpx.Response) -> int:
    return response.json()["code"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def published(platform, mailbox, admin) -> AsyncIterator[Toall]:
    """An unchecked requester is refused; once the admin checks them, their task is created."""
    publisher, account = await user_client(platform, mailbox, "demand")
    files = await upload_texts(publisher, TEXTS)
    toall = Toall(publisher, account, task_body(files, reward_per_q=5, distribute_user_num=2, strategy="toall"))
    seen = toall.seen
    seen["unchecked create"] = await publisher.post("/task/", json=toall.body)
    seen["check user"] = await admin.post(f"/user/check_user/{account.user_id}")
    created = seen["create"] = await publisher.post("/task/", json=toall.body)
    assert code(created) == 0, created.text
    toall.task_id = created.json()["data"]["task_id"]
    seen["view"] = await task_view(publisher, toall.task_id)
    yield toall
    await publisher.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def distributed(published: Toall, admin, people, db) -> Toall:
    """Distribution waits for the admin's check and for the points, then holds the reward in escrow."""
    toall, seen, publisher, task_id = published, published.seen, published.publisher, published.task_id
    seen["distribute unchecked"] = await publisher.post(f"/task/distribute/{task_id}")
    seen["admin list"] = (await admin.get("/task/get_all_tasks")).json()["data"]
    seen["check accept"] = await admin.post(f"/task/check_task/{task_id}", json={"result": "accept"})
    seen["check again"] = await admin.post(f"/task/check_task/{task_id}", json={"result": "refuse"})
    seen["distribute unfunded"] = await publisher.post(f"/task/distribute/{task_id}")
    await people.fund_client(publisher, 100)  # 1000 points
    seen["is distributed before"] = (await publisher.get(f"/task/is_distributed/{task_id}")).json()["data"]
    seen["distribute"] = await publisher.post(f"/task/distribute/{task_id}")
    seen["is distributed after"] = (await publisher.get(f"/task/is_distributed/{task_id}")).json()["data"]
    seen["publisher score"] = await people.score(toall.account.user_id)
    seen["escrow"] = await db.fetchval("SELECT balance FROM auth.escrows WHERE id = $1", f"task:{task_id}")
    seen["distribute again"] = await publisher.post(f"/task/distribute/{task_id}")
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def taken(distributed: Toall, people) -> Toall:
    """C refuses the pool task; A and B take its two slots; D finds none left."""
    toall, seen, task_id = distributed, distributed.seen, distributed.task_id
    toall.crowd = await people.annotators(5)
    a, b, c, d, _ = toall.crowd
    seen["free for c"] = [t["task_id"] for t in (await c.client.get("/task/get_free_tasks")).json()["data"]]
    seen["c refuses"] = await c.client.post(f"/task/refuse/{task_id}")
    seen["free for c after"] = [t["task_id"] for t in (await c.client.get("/task/get_free_tasks")).json()["data"]]
    seen["c accepts"] = await c.client.post(f"/task/accept/{task_id}")
    seen["a accepts"] = await a.client.post(f"/task/accept/{task_id}")
    seen["a accepts again"] = await a.client.post(f"/task/accept/{task_id}")
    seen["b accepts"] = await b.client.post(f"/task/accept/{task_id}")
    seen["d accepts"] = await d.client.post(f"/task/accept/{task_id}")
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def labelled(taken: Toall) -> Toall:
    """A reads, starts and answers every question once."""
    toall, seen, task_id = taken, taken.seen, taken.task_id
    a = toall.crowd[0]
    seen["question"] = (await a.client.get(f"/task/{task_id}/1")).json()["data"]
    seen["start"] = await a.client.post(f"/task/startquestion/{task_id}/1")
    seen["start again"] = await a.client.post(f"/task/startquestion/{task_id}/1")
    seen["taginfo started"] = (await a.client.get(f"/task/taginfo/{task_id}")).json()["data"]
    await answer_all(a, task_id, {1: "cat", 2: "dog", 3: "bird"})
    seen["resubmit"] = await a.client.post(f"/task/upload_res/{task_id}/2", json={"result": "cat"})
    seen["taginfo done"] = (await a.client.get(f"/task/taginfo/{task_id}")).json()["data"]
    seen["own answers"] = (await a.client.get(f"/task/{task_id}/1")).json()["data"]["result"]
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def handed_back(labelled: Toall) -> Toall:
    """B answers one question and gives the task back: the slot returns to the pool, D takes it."""
    toall, seen, task_id = labelled, labelled.seen, labelled.task_id
    _, b, _, d, _ = toall.crowd
    await answer_all(b, task_id, {1: "dog"})
    seen["b refuses"] = await b.client.post(f"/task/refuse/{task_id}")
    seen["b answers after"] = await b.client.post(f"/task/upload_res/{task_id}/2", json={"result": "dog"})
    seen["d accepts the freed slot"] = await d.client.post(f"/task/accept/{task_id}")
    await answer_all(d, task_id, {1: "dog", 2: "dog", 3: "dog"})
    seen["publisher view"] = await task_view(toall.publisher, task_id)
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def reviewed(handed_back: Toall) -> Toall:
    """A full check of A and a spot check; A accepted (paid 5 x 3), D refused."""
    toall, seen, publisher, task_id = handed_back, handed_back.seen, handed_back.publisher, handed_back.task_id
    a, _, _, d, _ = toall.crowd
    check = f"/review/manual_check/{task_id}/{a.user_id}"
    seen["full check"] = (await publisher.post(check, json={"check_method": "all"})).json()["data"]["q_info"]
    seen["spot check"] = (await publisher.post(check, json={"check_method": "select"})).json()["data"]["q_info"]
    seen["download too early"] = await publisher.get(f"/review/download/{task_id}")
    seen["accept a"] = await publisher.post(f"/review/accept/{task_id}/{a.user_id}")
    seen["accept a again"] = await publisher.post(f"/review/accept/{task_id}/{a.user_id}")
    seen["refuse d"] = await publisher.post(f"/review/refuse/{task_id}/{d.user_id}")
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def finished(reviewed: Toall) -> Toall:
    """Redistribute replaces the refused work: D joins the past list, E takes the slot and is accepted."""
    toall, seen, publisher, task_id = reviewed, reviewed.seen, reviewed.publisher, reviewed.task_id
    _, _, _, d, e = toall.crowd
    seen["e accepts a full task"] = await e.client.post(f"/task/accept/{task_id}")
    seen["redistribute"] = await publisher.post(f"/task/redistribute/{task_id}")
    seen["d accepts again"] = await d.client.post(f"/task/accept/{task_id}")
    seen["e accepts"] = await e.client.post(f"/task/accept/{task_id}")
    await answer_all(e, task_id, {1: "cat", 2: "cat", 3: "bird"})
    seen["accept e"] = await publisher.post(f"/review/accept/{task_id}/{e.user_id}")
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def paid(finished: Toall, people, db) -> Toall:
    """The outbox has settled the task: payouts and the refund of the rest."""
    toall, seen, task_id = finished, finished.seen, finished.task_id
    a, _, _, d, e = toall.crowd
    seen["ops"] = await settled(db, task_id)
    seen["scores"] = {m.user_id: await people.score(m.user_id) for m in (a, d, e)}
    seen["publisher score after"] = await people.score(toall.account.user_id)
    seen["escrow after"] = await db.fetchval("SELECT balance FROM auth.escrows WHERE id = $1", f"task:{task_id}")
    seen["a tag_score"] = (await a.client.get(f"/user/userinfo/{a.user_id}")).json()["data"]["tag_score"]
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def downloaded(paid: Toall) -> Toall:
    """One annotator's answers, and the whole task with the consolidated answer."""
    toall, seen, publisher, task_id = paid, paid.seen, paid.publisher, paid.task_id
    a, _, _, _, e = toall.crowd
    seen["a's csv"] = (await publisher.get(f"/review/download/{task_id}/{a.user_id}")).text
    seen["task csv"] = await publisher.get(f"/review/download/{task_id}")
    seen["e downloads"] = await e.client.get(f"/review/download/{task_id}")
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def reports_settled(downloaded: Toall, admin, db) -> Toall:
    """The publisher reports D, D reports the publisher; the admin accepts one and rejects one."""
    toall, seen, publisher, task_id = downloaded, downloaded.seen, downloaded.publisher, downloaded.task_id
    a, _, c, d, _ = toall.crowd
    seen["reason"] = reason = unique("copied answers ")
    seen["publisher reports d"] = await publisher.post(f"/review/report/{task_id}/{d.user_id}", json={"reason": reason})
    seen["d reports publisher"] = await d.client.post(
        f"/review/report/{task_id}/{toall.account.user_id}", json={"reason": "unfair review"}
    )
    seen["c reports a"] = await c.client.post(f"/review/report/{task_id}/{a.user_id}", json={"reason": "x"})
    messages = (await admin.get("/review/reportmessage")).json()["data"]
    seen["messages"] = [m for m in messages if m["task_id"] == task_id]
    seen["d reads messages"] = await d.client.get("/review/reportmessage")
    seen["accept report"] = await admin.post(f"/review/acceptreport/{task_id}/{toall.account.user_id}")
    seen["credit op"] = await db.fetchrow(
        "SELECT body, status FROM tasks.outbox WHERE kind = 'credit' AND path = $1",
        f"/internal/users/{d.user_id}/credit",
    )

    async def credit_deducted() -> bool:  # the outbox delivers it to auth shortly after the commit
        return await db.fetchval("SELECT credit_score FROM auth.users WHERE id = $1", d.user_id) == 90

    seen["credit deducted"] = await eventually(credit_deducted, what="the credit deduction in auth")
    seen["reject report"] = await admin.post(f"/review/rejectreport/{task_id}/{d.user_id}")
    seen["reject again"] = await admin.post(f"/review/rejectreport/{task_id}/{d.user_id}")
    messages = (await admin.get("/review/reportmessage")).json()["data"]
    seen["messages left"] = [m for m in messages if m["task_id"] == task_id]
    return toall


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def listed(reports_settled: Toall, admin) -> Toall:
    """Everyone's task lists once it is all over."""
    toall, seen = reports_settled, reports_settled.seen
    seen["publisher's tasks"] = (await toall.publisher.get("/task/get_my_tasks")).json()["data"]
    seen["admin's tasks"] = await admin.get("/task/get_my_tasks")
    seen["a's tasks"] = (await toall.crowd[0].client.get("/task/get_my_tasks")).json()["data"]
    return toall


async def test_a_requester_publishes_once_the_admin_checked_them(published: Toall):
    seen = published.seen
    r = seen["unchecked create"]
    assert (r.status_code, code(r), r.json()["message"]) == (400, 35, "user not checked")
    assert code(seen["check user"]) == 0
    assert code(seen["create"]) == 0, seen["create"].text
    view = seen["view"]
    assert (view["q_num"], view["check_result"], view["is_distributed"]) == (3, "wait", False)
    assert view["publisher"]["user_id"] == published.account.user_id


async def test_distribution_waits_for_the_check_and_the_points_and_holds_the_reward(distributed: Toall):
    seen, task_id = distributed.seen, distributed.task_id
    r = seen["distribute unchecked"]
    assert (code(r), r.json()["message"]) == (34, "task not checked")
    mine = next(t for t in seen["admin list"] if t["task_id"] == task_id)
    assert (mine["check_result"], mine["task_name"]) == ("wait", distributed.body["task_name"])
    assert code(seen["check accept"]) == 0
    assert code(seen["check again"]) == 51
    r = seen["distribute unfunded"]
    assert (code(r), r.json()["message"]) == (10, "score not enough")
    assert seen["is distributed before"] == {"is_distributed": False}
    assert code(seen["distribute"]) == 0, seen["distribute"].text
    assert seen["is distributed after"] == {"is_distributed": True}
    assert seen["publisher score"] == 1000 - 5 * 3 * 2
    assert seen["escrow"] == 30
    assert code(seen["distribute again"]) == 23


async def test_annotators_take_the_pool_slots_and_a_refusal_is_final(taken: Toall):
    seen, task_id = taken.seen, taken.task_id
    # Refusing a pool task hides it, and the past list never gets it back.
    assert task_id in seen["free for c"]
    assert code(seen["c refuses"]) == 0
    assert task_id not in seen["free for c after"]
    assert code(seen["c accepts"]) == 18

    accepted = seen["a accepts"].json()
    assert accepted["code"] == 0 and (accepted["data"]["q_num"], accepted["data"]["state"]) == (3, "accepted")
    assert accepted["data"]["deadline"] - accepted["data"]["accepted_at"] == taken.body["total_time_limit"]
    assert code(seen["a accepts again"]) == 32
    assert code(seen["b accepts"]) == 0
    assert code(seen["d accepts"]) == 31


async def test_an_annotator_starts_and_answers_each_question_once(labelled: Toall):
    seen, a = labelled.seen, labelled.crowd[0]
    # The question's text by lines, start once, answer once.
    question = seen["question"]
    assert question["data"] == ["a cat", "on a mat"] and question["tag_type"] == ["cat", "dog", "bird"]
    assert code(seen["start"]) == 0
    r = seen["start again"]
    assert (code(r), r.json()["message"]) == (59, "already start")
    info = seen["taginfo started"]
    assert [(i["q_id"], i["state"], i["q_type"]) for i in info] == [
        (1, "started", "text"),
        (2, "notstarted", "text"),
        (3, "notstarted", "text"),
    ]
    assert info[2]["q_data"] == "a bird in the sky"
    r = seen["resubmit"]
    assert (r.status_code, code(r), r.json()["message"]) == (400, 50, "no resubmit")
    assert [i["state"] for i in seen["taginfo done"]] == ["finished"] * 3
    # An annotator sees their own answer only.
    assert [(x["tag_user"]["user_id"], x["tag_res"]) for x in seen["own answers"]] == [(a.user_id, "cat")]


async def test_a_slot_given_back_goes_to_the_next_annotator(handed_back: Toall):
    seen = handed_back.seen
    a, b, c, d, _ = handed_back.crowd
    assert code(seen["b refuses"]) == 0
    assert code(seen["b answers after"]) == 16
    assert code(seen["d accepts the freed slot"]) == 0

    view = seen["publisher view"]
    current = {u["tag_user"]["user_id"]: u for u in view["current_tag_user_list"]}
    assert set(current) == {a.user_id, d.user_id}
    assert current[a.user_id]["state"] == "finished" and current[a.user_id]["is_finished"]
    assert {u["user_id"] for u in view["past_tag_user_list"]} == {b.user_id, c.user_id}
    assert {(p["tag_user"]["user_id"], p["q_id"]) for p in view["progress"]} == {(a.user_id, 3), (d.user_id, 3)}
    for entry in [*view["current_tag_user_list"], view["publisher"]]:
        assert "password" not in (entry.get("tag_user") or entry) and "email" not in (entry.get("tag_user") or entry)


async def test_review_checks_the_answers_and_pays_accepted_work_once(reviewed: Toall):
    seen = reviewed.seen
    q_info = seen["full check"]
    assert [(q["q_id"], q["result"]) for q in q_info] == [(1, "cat"), (2, "dog"), (3, "bird")]
    assert q_info[0]["data"] == "a cat\non a mat"
    sample = seen["spot check"]
    assert len(sample) == 1 and sample[0]["q_id"] in (1, 2, 3)
    r = seen["download too early"]  # the whole download waits for the reviews
    assert (code(r), r.json()["message"]) == (25, "review not finish")
    assert seen["accept a"].json()["data"]["paid"] == 15
    assert code(seen["accept a again"]) == 1005
    assert code(seen["refuse d"]) == 0


async def test_redistribution_replaces_refused_work_and_the_last_acceptance_finishes_the_task(finished: Toall):
    seen = finished.seen
    assert code(seen["e accepts a full task"]) == 31
    assert seen["redistribute"].json()["data"]["removed"] == 1, seen["redistribute"].text
    assert code(seen["d accepts again"]) == 18
    assert code(seen["e accepts"]) == 0
    assert seen["accept e"].json()["data"] == {"paid": 15, "task_state": "finished"}


async def test_the_outbox_pays_the_annotators_and_refunds_the_rest(paid: Toall):
    seen = paid.seen
    a, _, _, d, e = paid.crowd
    ops = seen["ops"]
    assert sorted((o["kind"], o["status"]) for o in ops) == [("payout", "done"), ("payout", "done"), ("refund", "done")]
    assert seen["scores"][a.user_id] == 15 and seen["scores"][e.user_id] == 15
    assert seen["scores"][d.user_id] == 0
    assert seen["publisher score after"] == 1000 - 30
    assert seen["escrow after"] == 0
    assert seen["a tag_score"] == 15


async def test_results_download_per_annotator_and_consolidated(downloaded: Toall):
    seen = downloaded.seen
    a, _, _, _, e = downloaded.crowd
    rows = list(csv.DictReader(io.StringIO(seen["a's csv"])))
    assert [(r["q_id"], r["result"]) for r in rows] == [("1", "cat"), ("2", "dog"), ("3", "bird")]
    r = seen["task csv"]
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    header = rows[0]
    assert header[:5] == ["q_id", "filename", "data_type", "data", "majority_answer"]
    by_q = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert (by_q["3"]["majority_answer"], by_q["3"]["majority_votes"]) == ("bird", "2")
    assert by_q["1"]["dawid_skene_answer"] == ""  # two answers: majority only
    assert set(by_q["annotator_accuracy"]) >= {f"{a.user_name} ({a.user_id})", f"{e.user_name} ({e.user_id})"}
    # Only the task's publisher (or an admin) downloads it.
    assert code(seen["e downloads"]) == 16


async def test_the_admin_settles_reports_and_an_accepted_one_costs_credit(reports_settled: Toall):
    seen = reports_settled.seen
    _, _, _, d, _ = reports_settled.crowd
    assert code(seen["publisher reports d"]) == 0
    assert code(seen["d reports publisher"]) == 0
    assert code(seen["c reports a"]) == 34
    assert {(m["tagger_id"], m["reportee_id"], m["reason"]) for m in seen["messages"]} == {
        (d.user_id, str(d.user_id), seen["reason"]),
        (d.user_id, str(reports_settled.account.user_id), "unfair review"),
    }
    assert all(m["credit_score"] == 100 for m in seen["messages"])
    assert code(seen["d reads messages"]) == 1006
    assert seen["accept report"].json() == {"code": 0, "message": "succeed", "data": {"reports": 1}}
    credit = seen["credit op"]
    assert credit is not None and '"delta": -10' in credit["body"]
    assert seen["credit deducted"] is True
    assert code(seen["reject report"]) == 0
    r = seen["reject again"]
    assert (r.status_code, code(r), r.json()["message"]) == (404, 35, "report record not found")
    assert seen["messages left"] == []


async def test_the_finished_task_in_everyones_lists(listed: Toall):
    seen, task_id = listed.seen, listed.task_id
    assert next(t for t in seen["publisher's tasks"] if t["task_id"] == task_id)["task_state"] == "finished"
    assert code(seen["admin's tasks"]) == 12
    assert next(t for t in seen["a's tasks"] if t["task_id"] == task_id)["state"] == "review_accepted"
