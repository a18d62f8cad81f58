"""Every auth and tasks route declares its success answer (issue 14), and the declaration is true.

The scenarios below reach a success answer on every JSON operation of the two services through the
gateway, with clients that validate each 2xx answer against the merged /openapi.json (see
declared_answers.py: an undeclared field fails too); the last test asserts that none was left out, so
a new route must be declared and exercised here. Run the module whole: that last test counts what the
others saw.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from shared.launcher import Platform
from tests.conftest import Mailbox, unique
from tests.fixtures.face_photos import face_photo_dir
from tests.helpers import send_code, signup
from tests.openapi.conftest import CheckedPeople
from tests.openapi.declared_answers import DeclaredAnswers
from tests.tasks_api.conftest import PASSWORD, bank_card, image_files, task_body


def _ok(response: httpx.Response) -> dict:
    assert response.is_success, f"{response.request.method} {response.request.url.path}: {response.text[:300]}"
    body = response.json()
    assert body.get("code", 0) in (0, "0") and body.get("err_no", "0") in (0, "0"), response.text[:300]
    return body


# The checker itself: a declaration that does not say what the answer holds fails.

LOGIN_ANSWER = {"code": 0, "message": "succeed", "data": {"user_id": 1, "user_name": "ann", "user_type": "tag"}}


@pytest.mark.parametrize(
    "answer",
    [
        {**LOGIN_ANSWER, "data": {"user_id": 1, "user_name": "ann"}},  # a declared field missing
        {**LOGIN_ANSWER, "data": {**LOGIN_ANSWER["data"], "user_id": "1"}},  # a value of another type
        {**LOGIN_ANSWER, "data": {**LOGIN_ANSWER["data"], "email": "a@b.c"}},  # a field nobody declared
        {"response": "登录成功"},  # another document's envelope
    ],
)
def test_an_answer_the_declaration_does_not_describe_fails(declared: DeclaredAnswers, answer: dict) -> None:
    declared.check("POST", "/user/login", LOGIN_ANSWER)
    with pytest.raises(AssertionError, match="does not declare"):
        declared.check("POST", "/user/login", answer)


def test_every_json_operation_declares_its_answer(declared: DeclaredAnswers) -> None:
    assert not declared.undeclared, f"operations without a declared answer: {declared.undeclared}"
    services = {op.service for op in declared.operations}
    assert services == {"auth", "tasks"}, services


# Auth ------------------------------------------------------------------------------------------------


async def test_auth_003_answers(
    platform: Platform, mailbox: Mailbox, checked_people: CheckedPeople, checked_admin: httpx.AsyncClient
) -> None:
    me = checked_people.anonymous()
    account = await signup(me, mailbox, "demand")  # get_verifycode, register (003), login (003)
    other = await signup(checked_people.anonymous(), mailbox, "tag")
    _ok(await me.get(f"/user/userinfo/{account.user_id}"))  # my own profile
    _ok(await me.get(f"/user/userinfo/{other.user_id}"))  # someone's public one

    _ok(await me.post("/user/modifybankaccount", json={"bank_account": bank_card()}))
    _ok(await me.post("/user/recharge", json={"amount": 500}))
    _ok(await me.post("/user/withdraw", json={"amount": 1}))
    _ok(await me.post("/user/getvip", json={"package_type": "month"}))
    _ok(await me.post("/user/reset_invite_code"))

    _ok(await me.post("/user/verifycode_current_email"))
    code = await mailbox.code_for(account.email)
    _ok(await me.post("/user/modifypassword_by_email", json={"verifycode": code, "new_password": "pass-word-2"}))
    _ok(await me.post("/user/modifypassword", json={"old_password": "pass-word-2", "new_password": "pass-word-3"}))
    new_email = f"{unique('mail')}@example.com"
    code = await send_code(me, mailbox, new_email)
    _ok(await me.post("/user/change_email", json={"newemail": new_email, "verifycode": code}))

    published = _ok(
        await me.post("/advertise/publish", json={"time": 1800, "type": "banner", "url": "https://example.com/a.png"})
    )
    _ok(await me.get("/advertise/get_ad", params={"type": "banner", "num": 2}))
    _ok(await me.get("/advertise/get_my_ad"))
    _ok(await me.post(f"/advertise/renew/{published['data']['ad_id']}", json={"time": 60}))

    _ok(await me.get("/user/get_agent_list"))
    _ok(await me.post("/user/logout"))

    admin = checked_admin
    _ok(await admin.get("/user/get_all_users"))
    _ok(await admin.post(f"/user/check_user/{account.user_id}"))
    _ok(await admin.post(f"/user/ban_user/{other.user_id}"))
    _ok(await admin.post(f"/user/unban_user/{other.user_id}"))
    created = _ok(await admin.post("/user/api_keys", json={"name": unique("key ")}))
    _ok(await admin.get("/user/api_keys"))
    _ok(await admin.delete(f"/user/api_keys/{created['data']['id']}"))

    agent = checked_people.anonymous()
    await signup(agent, mailbox, "agent")
    _ok(await agent.get("/user/get_all_users", params={"type": "tag"}))  # an agent's rows


async def test_auth_001_and_000_answers(checked_people: CheckedPeople) -> None:
    client = checked_people.anonymous()
    expert, manager, requester = unique("expert_"), unique("manager_"), unique("req_")
    _ok(await client.post("/user/register", json={"username": expert, "password": PASSWORD, "user_area": "law"}))
    _ok(await client.post("/user/register-manager", json={"username": manager, "password": PASSWORD}))
    _ok(await client.get("/user/get-current"))  # 未登录
    _ok(await client.get("/user/login", params={"username": manager, "password": PASSWORD}))
    _ok(await client.get("/user/get-current"))  # 已登录, with who
    _ok(await client.get("/user/list"))
    _ok(await client.get("/user/logout"))

    _ok(await client.post("/api/users", json={"user_name": requester, "password": PASSWORD}))
    _ok(await client.post("/login", json={"username": requester, "password": PASSWORD}))


async def test_face_binding_and_login_answers(mailbox: Mailbox, checked_people: CheckedPeople) -> None:
    # t1.jpg: a face no other test binds to a user (a face bound to one user cannot be bound to another).
    image = base64.b64encode((face_photo_dir() / "t1.jpg").read_bytes()).decode()
    me = checked_people.anonymous()
    await signup(me, mailbox, "demand")
    _ok(await me.post("/user/face_recognition", json={"image": image}))
    _ok(await checked_people.anonymous().post("/user/face_recognition_login", json={"image": image}))


# Tasks (003) -----------------------------------------------------------------------------------------


async def test_task_003_answers(
    mailbox: Mailbox, checked_people: CheckedPeople, checked_admin: httpx.AsyncClient
) -> None:
    people, admin = checked_people, checked_admin
    publisher = await people.manager()
    await people.fund(publisher, 200)
    a, b, c, d = await people.annotators(4)
    pub = publisher.client

    stdans = _ok(await pub.post("/review/upload_stdans", files={"file": ("std.csv", "filename,tag\n1.jpg,cat\n")}))
    body = task_body(image_files(3), distribute_user_num=3, stdans_tag=stdans["data"]["tag"])
    task_id = _ok(await pub.post("/task/", json=body))["data"]["task_id"]
    _ok(await pub.put(f"/task/{task_id}", json=body))
    _ok(await pub.get(f"/task/is_distributed/{task_id}"))
    _ok(await admin.post(f"/task/check_task/{task_id}", json={"result": "accept"}))
    _ok(await pub.post(f"/task/distribute/{task_id}"))
    _ok(await admin.get("/task/get_all_tasks"))

    _ok(await a.client.get("/task/get_free_tasks"))
    _ok(await b.client.post(f"/task/refuse/{task_id}"))  # a pool task declined before taking it
    for member in (a, c, d):
        _ok(await member.client.post(f"/task/accept/{task_id}"))
    _ok(await d.client.post(f"/task/refuse/{task_id}"))  # a slot given back
    _ok(await a.client.get(f"/task/taginfo/{task_id}"))
    _ok(await a.client.post(f"/task/startquestion/{task_id}/1"))
    _ok(await a.client.post(f"/task/upload_res/{task_id}/1", json={"result": "cat"}))
    _ok(await a.client.get(f"/task/{task_id}/1"))
    csv = b"filename,tag\n2.jpg,dog\n3.jpg,bird\n"
    _ok(await a.client.post(f"/task/upload_res/{task_id}", files={"file": ("upload.csv", csv, "text/csv")}))
    _ok(await a.client.get(f"/task/{task_id}"))
    _ok(await a.client.get("/task/get_my_tasks"))
    for q_id, tag in ((1, "dog"), (2, "dog"), (3, "dog")):
        _ok(await c.client.post(f"/task/upload_res/{task_id}/{q_id}", json={"result": tag}))

    _ok(await pub.get(f"/task/{task_id}/1"))
    _ok(await pub.get(f"/task/{task_id}"))
    _ok(await pub.get("/task/get_my_tasks"))
    _ok(await pub.post(f"/review/manual_check/{task_id}/{a.user_id}", json={"check_method": "all"}))
    _ok(await pub.post(f"/review/accept/{task_id}/{a.user_id}"))
    _ok(await pub.post(f"/review/refuse/{task_id}/{c.user_id}"))
    _ok(await pub.post(f"/task/redistribute/{task_id}"))

    _ok(await pub.post(f"/review/report/{task_id}/{c.user_id}", json={"reason": "random answers"}))
    _ok(await a.client.post(f"/review/report/{task_id}/{publisher.user_id}", json={"reason": "slow review"}))
    _ok(await admin.get("/review/reportmessage"))
    _ok(await admin.post(f"/review/acceptreport/{task_id}/{publisher.user_id}"))
    _ok(await admin.post(f"/review/rejectreport/{task_id}/{a.user_id}"))

    agent = await people.agent(mailbox)
    delegated = _ok(await pub.post("/task/", json=task_body(image_files(1))))["data"]["task_id"]
    _ok(await admin.post(f"/task/check_task/{delegated}", json={"result": "accept"}))
    _ok(await pub.post(f"/task/to_agent/{delegated}", json={"agent_id": str(agent.user_id)}))
    _ok(await agent.client.post(f"/task/distribute_to_user/{delegated}/{b.user_id}"))
    _ok(await agent.client.get("/task/get_my_tasks"))
    _ok(await agent.client.get(f"/task/{delegated}"))

    doomed = _ok(await pub.post("/task/", json=task_body(image_files(1))))["data"]["task_id"]
    _ok(await pub.delete(f"/task/{doomed}"))


# Missions (001) --------------------------------------------------------------------------------------


async def test_mission_001_answers(checked_people: CheckedPeople) -> None:
    people = checked_people
    manager = await people.manager()
    first, second = await people.annotators(2, area="law")
    records = [
        {
            "data_background": f"background {i}",
            "data_question": f"question {i}?",
            "data_answer": [{"answer": f"answer {i}", "ranking_number": 0, "reserve": 1}],
            "data_area": "law",
            "data_keyword": f"kw{i}",
            "other": "",
        }
        for i in range(3)
    ]
    upload = {
        "dataset_name": unique("qa"),
        "dataset_task_type": "问答排序",
        "dataset_source": "openapi test",
        "dataset_json": json.dumps(records, ensure_ascii=False),
    }
    r = await manager.client.post("/dataset/upload", json=upload)
    dataset_id = r.json()["dataset_id"]

    assign = {"dataset_id": dataset_id, "area": "law", "expert_id_list": [first.user_id], "notice": "by Friday"}
    mission_id = _ok(await manager.client.post("/task/assign", json=assign))["mission_ids"][0]
    _ok(await manager.client.get("/task/list"))
    _ok(await first.client.get("/task/list"))
    _ok(await manager.client.get("/task/list-by-dataset", params={"dataset_id": dataset_id}))
    listed = _ok(await first.client.get("/data/list", params={"mission_id": mission_id}))["response"]
    answer = [{"answer": "best", "ranking_number": 0, "reserve": 1}]
    _ok(await first.client.put("/data/label", json={"data_id": listed[0]["data_id"], "data_answer": answer}))
    _ok(await manager.client.post("/task/urgent", json={"mission_id": mission_id}))
    _ok(await manager.client.put("/task/reassign", json={"mission_id": mission_id, "expert_id_list": [second.user_id]}))


def test_every_declared_answer_was_checked(declared: DeclaredAnswers) -> None:
    """Runs last: the scenarios above reached a success answer on every JSON operation of auth and tasks."""
    assert not declared.unseen(), f"no scenario here reaches a success answer of: {declared.unseen()}"
