"""Document 001's managers and experts, and document 000's users, with their own envelopes."""

from __future__ import annotations

from tests.conftest import unique


async def test_001_register_login_current_list_logout(client):
    expert, manager = unique("exp"), unique("mgr")
    r = await client.post("/user/register", json={"username": expert, "password": "secret-1", "user_area": "法律"})
    assert r.json() == {"response": "注册成功"}
    r = await client.post("/user/register", json={"username": expert, "password": "secret-1", "user_area": "x"})
    assert r.status_code == 400 and r.json() == {"response": "注册失败,用户名已存在"}
    r = await client.post("/user/register-manager", json={"username": manager, "password": "secret-2"})
    assert r.json() == {"response": "注册成功"}
    r = await client.post("/user/register-manager", json={"username": manager, "password": "secret-2"})
    assert r.json() == {"response": "注册失败,用户名已存在"}

    assert (await client.get("/user/get-current")).json() == {"response": "未登录"}
    r = await client.get("/user/list")
    assert r.status_code == 401 and r.json() == {"response": "未登录"}

    r = await client.get("/user/login", params={"username": unique("ghost"), "password": "whatever"})
    assert r.json() == {"response": "登陆失败,账号不存在,请先注册"}
    r = await client.get("/user/login", params={"username": expert, "password": "wrong-one"})
    assert r.json() == {"response": "登陆失败,用户名或密码不正确"}

    r = await client.get("/user/login", params={"username": expert, "password": "secret-1"})
    assert r.json()["response"] == "登录成功" and r.json()["Session-Id"]
    assert (await client.get("/user/get-current")).json() == {
        "response": "已登录",
        "username": expert,
        "usertype": "expert",
    }
    r = await client.get("/user/list")
    assert r.status_code == 403 and r.json() == {"response": "非管理员用户"}

    session_id = (await client.get("/user/login", params={"username": manager, "password": "secret-2"})).json()[
        "Session-Id"
    ]
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {session_id}"}
    assert (await client.get("/user/get-current", headers=bearer)).json()["usertype"] == "manager"
    experts = (await client.get("/user/list", headers=bearer)).json()["response"]
    mine = [e for e in experts if e["expert_name"] == expert]
    assert mine and mine[0]["expert_area"] == "法律" and isinstance(mine[0]["expert_id"], int)

    assert (await client.get("/user/logout", headers=bearer)).json() == {"response": "登出成功"}
    assert (await client.get("/user/get-current", headers=bearer)).json() == {"response": "未登录"}


async def test_001_manager_is_a_checked_requester(client):
    manager = unique("mgr")
    await client.post("/user/register-manager", json={"username": manager, "password": "secret-2"})
    data = (await client.post("/user/login", json={"user_name": manager, "password": "secret-2"})).json()["data"]
    info = (await client.get(f"/user/userinfo/{data['user_id']}")).json()["data"]
    assert (info["user_type"], info["is_checked"]) == ("demand", True)


async def test_001_bad_input(client):
    r = await client.post("/user/register", json={"username": unique("e"), "password": "123"})
    assert r.status_code == 400 and r.json()["response"].startswith("注册失败")
    r = await client.get("/user/login")
    assert r.status_code == 400 and "response" in r.json()


async def test_000_users_and_login(client):
    name = unique("kang")
    r = await client.post("/api/users", json={"user_name": name, "password": "123456"})
    body = r.json()
    assert r.status_code == 200
    assert (body["err_no"], body["err_desc"], body["user_name"]) == ("0", "OK", name)
    assert body["requestID"] and isinstance(body["time_used"], int)
    r = await client.post("/api/users", json={"user_name": name, "password": "123456"})
    assert r.status_code == 400 and r.json()["err_no"] == "4003"
    r = await client.post("/api/users", json={"user_name": name})
    assert r.status_code == 400 and r.json()["err_no"] == "4103"

    # 000 documents `username` and shows `user_name` in its example: both log in.
    for field in ("username", "user_name"):
        r = await client.post("/login", json={field: name, "password": "123456"})
        assert r.json()["err_no"] == "0" and r.json()["user_name"] == name
    r = await client.post("/login", json={"username": name, "password": "654321"})
    assert r.status_code == 400 and r.json()["err_no"] == "4102"
    assert (await client.get("/user/get-current")).json()["usertype"] == "manager"
