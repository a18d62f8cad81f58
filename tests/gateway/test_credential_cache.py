"""The gateway remembers resolved sessions and API keys for a few seconds (shared/sessions.py,
CredentialCache); every revocation must still end a credential at once, also one the gateway has just
used. Each test first uses the credential through the gateway, so that it is in the cache."""

from __future__ import annotations

import asyncio
import json

import httpx

from shared.sessions import SESSION_COOKIE
from tests.conftest import gateway_client, unique
from tests.gateway.test_hardening import lone_gateway, raw_request  # noqa: F401 - a fixture
from tests.helpers import admin_client, login, user_client

FACE = "/api/v1/engine/recocomp"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _recognised(platform, token: str) -> bool:
    async with gateway_client(platform, headers=_bearer(token)) as c:
        return (await c.get("/user/get-current")).json()["response"] == "已登录"


async def test_a_logout_ends_a_cached_session_at_once(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    token = client.cookies[SESSION_COOKIE]
    for _ in range(3):
        assert await _recognised(platform, token)
    assert (await client.post("/user/logout")).json()["code"] == 0
    assert not await _recognised(platform, token)
    await client.aclose()


async def test_a_password_change_ends_the_other_cached_sessions_at_once(platform, mailbox):
    client, account = await user_client(platform, mailbox)
    async with gateway_client(platform) as other:
        await login(other, account.user_name, account.password)
        other_token = other.cookies[SESSION_COOKIE]
    assert await _recognised(platform, other_token)
    r = await client.post("/user/modifypassword", json={"old_password": account.password, "new_password": "new-pass-2"})
    assert r.json()["code"] == 0, r.text
    assert not await _recognised(platform, other_token)
    assert await _recognised(platform, client.cookies[SESSION_COOKIE])  # the one that changed it stays
    await client.aclose()


async def test_a_ban_ends_a_cached_session_at_once(platform, mailbox):
    admin = await admin_client(platform)
    client, account = await user_client(platform, mailbox)
    token = client.cookies[SESSION_COOKIE]
    assert await _recognised(platform, token)
    assert (await admin.post(f"/user/ban_user/{account.user_id}")).json()["code"] == 0
    assert not await _recognised(platform, token)
    await admin.post(f"/user/unban_user/{account.user_id}")
    await admin.aclose()
    await client.aclose()


async def test_a_revoked_api_key_stops_working_at_once(platform):
    admin = await admin_client(platform)
    created = (await admin.post("/user/api_keys", json={"name": unique("key-")})).json()["data"]
    async with gateway_client(platform, headers={"X-API-Key": created["key"]}) as machine:
        for _ in range(3):
            assert (await machine.post(f"{FACE}/version")).json()["err_code"] == 0
        assert (await admin.delete(f"/user/api_keys/{created['id']}")).json()["code"] == 0
        assert (await machine.post(f"{FACE}/version")).status_code == 401
    await admin.aclose()


async def test_a_cached_api_key_is_no_session_token(platform, mailbox):
    """The cache remembers each kind of credential apart: a key just used on an AI route, presented as
    a session token elsewhere, is still no credential there (and a session is no API key)."""
    admin = await admin_client(platform)
    key = (await admin.post("/user/api_keys", json={"name": unique("key-")})).json()["data"]["key"]
    await admin.aclose()
    async with gateway_client(platform, headers={"X-API-Key": key}) as machine:
        assert (await machine.post(f"{FACE}/version")).json()["err_code"] == 0  # now cached
    assert not await _recognised(platform, key)
    async with gateway_client(platform, headers=_bearer(key)) as c:
        assert (await c.post("/user/recharge", json={"amount": 1})).status_code == 401

    user, _ = await user_client(platform, mailbox)
    token = user.cookies[SESSION_COOKIE]
    assert await _recognised(platform, token)  # now cached as a session
    async with gateway_client(platform, headers={"X-API-Key": token}) as c:
        assert (await c.post(f"{FACE}/version")).status_code == 401
    await user.aclose()


async def test_revocations_while_requests_are_in_flight_leave_nothing_behind(platform, mailbox):
    """Requests that resolve a session while it is being revoked must not put it back in the cache."""
    client, _ = await user_client(platform, mailbox)
    token = client.cookies[SESSION_COOKIE]

    async def hammer() -> None:
        async with gateway_client(platform, headers=_bearer(token)) as c:
            for _ in range(20):
                await c.get("/user/get-current")

    traffic = [asyncio.create_task(hammer()) for _ in range(4)]
    await asyncio.sleep(0.05)
    assert (await client.post("/user/logout")).json()["code"] == 0
    await asyncio.gather(*traffic)
    assert not await _recognised(platform, token)
    await client.aclose()


async def test_a_client_that_leaves_mid_body_is_no_server_error(platform):
    # The login limit reads the body (to count the named account); the client sends half of it and
    # goes. Nobody hears an answer, but the gateway must not log a crash for it.
    request_id = unique("gone").replace("_", "")
    body = json.dumps({"user_name": unique("u"), "password": "x" * 20}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.gateway_port)
    writer.write(
        (
            "POST /user/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Request-ID: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[:10]
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    # The gateway still answers, and logged no error for the request that went away.
    assert (await raw_request(platform.gateway_port, "GET /user/get-current HTTP/1.1")).status == 200
    await asyncio.sleep(0.5)
    log = (platform.log_dir / "gateway.log").read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert not [line for line in lines if line.get("request_id") == request_id and line["level"] == "ERROR"]


async def test_a_delete_on_a_connection_the_service_closed_is_not_sent_again(lone_gateway):  # noqa: F811
    # DELETE is idempotent by HTTP's book, but a service may answer a repeat differently (a second
    # delete finds nothing): like a POST, it goes again only with an Idempotency-Key.
    async with httpx.AsyncClient(base_url=lone_gateway.url) as c:
        assert (await c.get("/user/boom")).status_code == 500
        r = await c.delete("/user/api_keys/1")
        assert r.status_code == 503 and r.json()["code"] == 1002
        assert (await c.get("/user/boom")).status_code == 500
        r = await c.delete("/user/api_keys/1", headers={"Idempotency-Key": unique("k")})
        assert r.status_code == 200
