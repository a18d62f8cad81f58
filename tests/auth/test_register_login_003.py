"""003 registration, login, logout and email-code flows, with every documented error."""

from __future__ import annotations

import time

import pytest

from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    REJECTED_MAIL_DOMAIN,
    gateway_client,
    unique,
)
from tests.helpers import admin_client, login, send_code, signup


def _register_body(name: str, email: str, code: str, **extra: object) -> dict:
    return {
        "user_name": name,
        "password": "pass-word-1",
        "user_type": "demand",
        "invite_code": None,
        "email": email,
        "verifycode": code,
        **extra,
    }


async def _code(client, mailbox) -> tuple[str, str]:
    email = f"{unique('m')}@example.com"
    return email, await send_code(client, mailbox, email)


async def test_register_then_login_sets_a_working_session(client, mailbox):
    account = await signup(client, mailbox, "tag")
    assert len(account.invite_code) == 8
    me = await client.get(f"/user/userinfo/{account.user_id}")
    assert me.status_code == 200
    assert me.json()["data"]["user_name"] == account.user_name
    assert me.json()["data"]["email"] == account.email


@pytest.mark.parametrize(
    "name, password, code, message",
    [
        ("abc", "pass-word-1", 2, "username format error"),
        ("a" * 25, "pass-word-1", 2, "username format error"),
        ("has space", "pass-word-1", 2, "username format error"),
        ("validname", "12345", 3, "password format error"),
        ("validname", "x" * 21, 3, "password format error"),
    ],
)
async def test_register_format_errors(client, mailbox, name, password, code, message):
    email, verify = await _code(client, mailbox)
    body = _register_body(name + unique("") if code == 3 else name, email, verify, password=password)
    response = await client.post("/user/register", json=body)
    assert response.status_code == 400
    assert response.json() == {"code": code, "message": message, "data": {}}


async def test_register_existing_username_is_code_1(client, mailbox):
    account = await signup(client, mailbox)
    email, verify = await _code(client, mailbox)
    response = await client.post("/user/register", json=_register_body(account.user_name, email, verify))
    assert (response.status_code, response.json()["code"]) == (400, 1)


async def test_register_wrong_invite_code_is_92_and_right_one_rewards(platform, client, mailbox):
    email, verify = await _code(client, mailbox)
    response = await client.post(
        "/user/register", json=_register_body(unique("n_"), email, verify, invite_code="NOPE0000")
    )
    assert (response.status_code, response.json()["code"]) == (400, 92)

    inviter = await signup(client, mailbox)
    async with gateway_client(platform) as other:
        await signup(other, mailbox, invite_code=inviter.invite_code)
    info = (await client.get(f"/user/userinfo/{inviter.user_id}")).json()["data"]
    assert info["score"] == 10


async def test_admin_registration_needs_an_admins_invite_code(platform, client, mailbox):
    user = await signup(client, mailbox)
    email, verify = await _code(client, mailbox)
    body = _register_body(unique("adm_"), email, verify, user_type="admin")
    assert (await client.post("/user/register", json=body)).json()["code"] == 80
    body["invite_code"] = user.invite_code  # a code, but not an admin's
    assert (await client.post("/user/register", json=body)).json()["code"] == 80

    admin = await admin_client(platform)
    admin_info = (await admin.get("/user/get_all_users")).json()["data"]
    root_id = next(u["user_id"] for u in admin_info if u["user_name"] == ADMIN_USER)
    root_code = (await admin.get(f"/user/userinfo/{root_id}")).json()["data"]["invite_code"]
    body["invite_code"] = root_code
    response = await client.post("/user/register", json=body)
    assert response.status_code == 200, response.text
    await admin.aclose()


async def test_register_email_and_code_errors(client, mailbox, redis, backing):
    taken = await signup(client, mailbox)
    # 41: an email already bound, both when asking for a code and when registering.
    response = await client.post("/user/get_verifycode", json={"email": taken.email})
    assert (response.status_code, response.json()["code"]) == (400, 41)

    email, verify = await _code(client, mailbox)
    wrong = "000000" if verify != "000000" else "111111"
    response = await client.post("/user/register", json=_register_body(unique("n_"), email, wrong))
    assert (response.status_code, response.json()["code"]) == (400, 46)

    # 45: the code's time is up (moved into the past in Redis rather than waiting 10 minutes).
    await redis.hset(f"{backing.namespace}:email-code:{email}", "expires_at", time.time() - 1)
    response = await client.post("/user/register", json=_register_body(unique("n_"), email, verify))
    assert (response.status_code, response.json()["code"]) == (400, 45)


async def test_codes_are_single_use_and_guesses_are_capped(client, mailbox):
    email, verify = await _code(client, mailbox)
    for _ in range(5):
        r = await client.post(
            "/user/register", json=_register_body(unique("n_"), email, "999999" if verify != "999999" else "888888")
        )
        assert r.json()["code"] == 46
    # Out of guesses: even the right code is now expired.
    r = await client.post("/user/register", json=_register_body(unique("n_"), email, verify))
    assert r.json()["code"] == 45


async def test_verify_code_mail_failure_is_code_40(client):
    response = await client.post("/user/get_verifycode", json={"email": f"x@{REJECTED_MAIL_DOMAIN}"})
    assert (response.status_code, response.json()["code"]) == (400, 40)


async def test_register_missing_fields_and_bad_json_are_1005(client):
    r = await client.post("/user/register", json={"user_name": "someone"})
    assert (r.status_code, r.json()["code"]) == (400, 1005)
    r = await client.post("/user/register", content=b"{not json", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, 1005)
    assert "JSON" in r.json()["message"]
    r = await client.post(
        "/user/register",
        json={"user_name": "abcd", "password": "abcdef", "user_type": "emperor", "email": "a@b.co", "verifycode": "1"},
    )
    assert (r.status_code, r.json()["code"]) == (400, 1005)


async def test_login_errors_and_logout(client, mailbox):
    account = await signup(client, mailbox)
    r = await client.post("/user/login", json={"user_name": account.user_name, "password": "wrong-pass"})
    assert r.status_code == 400 and r.json() == {"code": 4, "message": "wrong username or password", "data": {}}
    r = await client.post("/user/login", json={"user_name": "nobody-" + unique(""), "password": "x" * 8})
    assert r.json()["code"] == 4
    assert (await client.post("/user/logout")).json()["code"] == 0
    r = await client.get(f"/user/userinfo/{account.user_id}")
    assert r.status_code == 401 and r.json() == {"code": 1001, "message": "not_logged_in", "data": {}}


async def test_every_login_works_for_every_account(client, mailbox):
    """CONTRACT: a 003 account logs in through 001's and 000's login too."""
    account = await signup(client, mailbox, "tag")
    r = await client.get("/user/login", params={"username": account.user_name, "password": account.password})
    assert r.json()["response"] == "登录成功"
    r = await client.post("/login", json={"user_name": account.user_name, "password": account.password})
    assert r.json()["err_no"] == "0"


async def test_password_hashes_are_argon2id(db, client, mailbox):
    account = await signup(client, mailbox)
    stored = await db.fetchval("SELECT password_hash FROM auth.users WHERE id = $1", account.user_id)
    assert stored.startswith("$argon2id$")
    assert account.password not in stored


async def test_modify_password(platform, client, mailbox):
    account = await signup(client, mailbox)
    other_session = gateway_client(platform)
    await login(other_session, account.user_name, account.password)
    r = await client.post("/user/modifypassword", json={"old_password": "bad-old-pw", "new_password": "new-pass-1"})
    assert r.json() == {"code": 4, "message": "wrong password", "data": {}}
    r = await client.post("/user/modifypassword", json={"old_password": account.password, "new_password": "1"})
    assert r.json()["code"] == 3
    r = await client.post("/user/modifypassword", json={"old_password": account.password, "new_password": "new-pass-1"})
    assert r.json()["code"] == 0
    # The other session is over; this one goes on; the new password works.
    assert (await other_session.get(f"/user/userinfo/{account.user_id}")).status_code == 401
    assert (await client.get(f"/user/userinfo/{account.user_id}")).status_code == 200
    await login(other_session, account.user_name, "new-pass-1")
    await other_session.aclose()


async def test_change_email_and_password_by_email(client, mailbox):
    account = await signup(client, mailbox)
    new_email = f"{unique('new')}@example.com"
    r = await client.post("/user/change_email", json={"newemail": new_email, "verifycode": "123456"})
    assert r.json()["code"] == 40  # no code was sent to that address
    code = await send_code(client, mailbox, new_email)
    r = await client.post("/user/change_email", json={"newemail": new_email, "verifycode": "x"})
    assert r.json()["code"] == 46
    r = await client.post("/user/change_email", json={"newemail": new_email, "verifycode": code})
    assert r.json()["code"] == 0
    info = (await client.get(f"/user/userinfo/{account.user_id}")).json()["data"]
    assert info["email"] == new_email

    mailbox.messages.pop(new_email.lower(), None)
    r = await client.post("/user/verifycode_current_email")
    assert r.json()["code"] == 0
    code = await mailbox.code_for(new_email)
    r = await client.post("/user/modifypassword_by_email", json={"verifycode": code, "new_password": "bad"})
    assert r.json()["code"] == 3
    r = await client.post("/user/modifypassword_by_email", json={"verifycode": code, "new_password": "by-mail-pw"})
    assert r.json()["code"] == 0
    await login(client, account.user_name, "by-mail-pw")


async def test_code_for_current_email_without_email_is_32(client):
    name = unique("exp")
    r = await client.post("/user/register", json={"username": name, "password": "secret-1", "user_area": "law"})
    assert r.json() == {"response": "注册成功"}
    # An expert registered through 001 has no email.
    await login(client, name, "secret-1")
    r = await client.post("/user/verifycode_current_email")
    assert (r.status_code, r.json()["code"]) == (400, 32)


async def test_reset_invite_code(client, mailbox):
    account = await signup(client, mailbox)
    r = await client.post("/user/reset_invite_code")
    assert r.json()["code"] == 0
    info = (await client.get(f"/user/userinfo/{account.user_id}")).json()["data"]
    assert info["invite_code"] != account.invite_code
    assert info["invite_code"] == r.json()["data"]["invite_code"]


async def test_admin_bootstrap_account_exists(client):
    r = await client.post("/user/login", json={"user_name": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert r.json()["data"]["user_type"] == "admin"
