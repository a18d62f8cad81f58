"""Admin and agent endpoints of 003: check, ban, unban, user lists; role checks on each."""

from __future__ import annotations

from tests.conftest import gateway_client
from tests.helpers import admin_client, user_client


async def test_only_admins_check_ban_and_unban(platform, mailbox):
    demand, account = await user_client(platform, mailbox, "demand")
    for path in ("ban_user", "unban_user", "check_user"):
        r = await demand.post(f"/user/{path}/{account.user_id}")
        assert r.status_code == 400 and r.json() == {"code": 19, "message": "no permission", "data": {}}
    anonymous = gateway_client(platform)
    assert (await anonymous.post(f"/user/ban_user/{account.user_id}")).json()["code"] == 1001
    await demand.aclose()
    await anonymous.aclose()


async def test_check_user_approves_a_requester(platform, mailbox):
    admin = await admin_client(platform)
    demand, account = await user_client(platform, mailbox, "demand")
    info = (await demand.get(f"/user/userinfo/{account.user_id}")).json()["data"]
    assert info["is_checked"] is False
    assert (await admin.post(f"/user/check_user/{account.user_id}")).json()["code"] == 0
    info = (await demand.get(f"/user/userinfo/{account.user_id}")).json()["data"]
    assert info["is_checked"] is True
    assert (await admin.post("/user/check_user/987654")).json()["code"] == 8
    await admin.aclose()
    await demand.aclose()


async def test_ban_ends_sessions_and_refuses_login_until_unbanned(platform, mailbox):
    admin = await admin_client(platform)
    tagger, account = await user_client(platform, mailbox, "tag")
    assert (await admin.post(f"/user/ban_user/{account.user_id}")).json()["code"] == 0
    assert (await tagger.get(f"/user/userinfo/{account.user_id}")).status_code == 401
    r = await tagger.post("/user/login", json={"user_name": account.user_name, "password": account.password})
    assert r.status_code == 400 and r.json() == {"code": 1007, "message": "user is banned", "data": {}}
    r = await tagger.get("/user/login", params={"username": account.user_name, "password": account.password})
    assert r.status_code == 400 and "封禁" in r.json()["response"]
    assert (await admin.post(f"/user/unban_user/{account.user_id}")).json()["code"] == 0
    r = await tagger.post("/user/login", json={"user_name": account.user_name, "password": account.password})
    assert r.json()["code"] == 0
    await admin.aclose()
    await tagger.aclose()


async def test_user_lists_by_role(platform, mailbox):
    admin = await admin_client(platform)
    tagger, tag_account = await user_client(platform, mailbox, "tag")
    agent, _ = await user_client(platform, mailbox, "agent")
    demand, _ = await user_client(platform, mailbox, "demand")

    everyone = (await admin.get("/user/get_all_users")).json()["data"]
    assert {"demand", "tag", "agent", "admin"} <= {u["user_type"] for u in everyone}
    assert all("score" in u for u in everyone)
    tags = (await admin.get("/user/get_all_users", params={"type": "tag"})).json()["data"]
    assert {u["user_type"] for u in tags} == {"tag"}
    assert (await admin.get("/user/get_all_users", params={"type": "gods"})).json()["code"] == 1005

    # An agent sees annotators only, without their points or VIP dates.
    seen = (await agent.get("/user/get_all_users", params={"type": "all"})).json()["data"]
    assert {u["user_type"] for u in seen} == {"tag"}
    assert tag_account.user_id in {u["user_id"] for u in seen}
    assert all("score" not in u and "vip_expire_time" not in u for u in seen)

    r = await demand.get("/user/get_all_users")
    assert r.status_code == 400 and r.json()["code"] == 1006
    r = await tagger.get("/user/get_all_users")
    assert r.json()["code"] == 1006
    # The role is checked before the query: a bad value from the wrong role is still 1006.
    r = await tagger.get("/user/get_all_users", params={"type": "gods"})
    assert r.json()["code"] == 1006

    agents = (await demand.get("/user/get_agent_list")).json()
    assert agents["code"] == "0" and agents["message"] == "success"
    listed = agents["data"]["agent_list"]
    assert listed and {a["user_type"] for a in listed} == {"agent"}
    assert all("email" not in a and "face_base64" not in a for a in listed)
    assert (await tagger.get("/user/get_agent_list")).json()["code"] == 1006
    for c in (admin, tagger, agent, demand):
        await c.aclose()


async def test_face_endpoints_answer_503_while_the_face_service_is_down(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    platform.stop_service("face")
    try:
        r = await client.post("/user/face_recognition", json={"image": "aGVsbG8="})
        assert r.status_code == 503 and r.json()["code"] == 1002
        r = await client.post("/user/face_recognition_login", json={"image": "aGVsbG8="})
        assert r.status_code == 503 and r.json()["code"] == 1002
        r = await client.post("/user/face_recognition_login", json={})
        assert r.status_code == 400 and r.json()["code"] == 1005
    finally:
        platform.start_service("face")
        await platform.wait_ready(f"{platform.service_url('face')}/readyz", "face")
    await client.aclose()
