"""What each credential opens (shared/access.py): a session opens everything its role allows, an API
key only the AI routes, and a ban ends both at once. CSRF applies to every request that changes state,
whatever its method."""

from __future__ import annotations

import httpx
import pytest

from shared.identity import IDENTITY_HEADER, Identity, sign_identity
from tests.conftest import ADMIN_USER, gateway_client, unique
from tests.helpers import admin_client, signup, user_client

FACE = "/api/v1/engine/recocomp"


async def _root_admin_id(admin: httpx.AsyncClient) -> int:
    users = (await admin.get("/user/get_all_users")).json()["data"]
    return next(u["user_id"] for u in users if u["user_name"] == ADMIN_USER)


async def _new_key(admin: httpx.AsyncClient) -> str:
    response = await admin.post("/user/api_keys", json={"name": unique("key-")})
    assert response.status_code == 200, response.text
    return response.json()["data"]["key"]


async def test_an_api_key_opens_the_ai_routes_and_nothing_else(platform):
    admin = await admin_client(platform)
    admin_id = await _root_admin_id(admin)
    key = await _new_key(admin)
    async with gateway_client(platform, headers={"X-API-Key": key}) as machine:
        # The AI routes: 002, 004's detect and data API.
        assert (await machine.post(f"{FACE}/version")).json()["err_code"] == 0
        assert (await machine.get("/api/data/getRecent", params={"limit": 1})).status_code == 200
        # Everything else answers as if no credential were sent: the admin's profile, points,
        # bank card, password and e-mail logic, face binding, key management, other services.
        refused = [
            ("GET", f"/user/userinfo/{admin_id}", None),
            ("POST", "/user/recharge", {"amount": 100}),
            ("POST", "/user/modifybankaccount", {"bank_account": "6222020000000000"}),
            ("POST", "/user/modifypassword", {"old_password": "x" * 8, "new_password": "y" * 8}),
            ("POST", "/user/change_email", {"email": "a@example.com", "verifycode": "123456"}),
            ("POST", "/user/reset_invite_code", {}),
            ("POST", "/user/face_recognition", {"image": "aGVsbG8="}),
            ("GET", "/user/api_keys", None),
            ("GET", "/user/get_all_users", None),
            ("GET", "/task/get_my_tasks", None),
            ("GET", "/dataset/list", None),
        ]
        for method, path, body in refused:
            response = await machine.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.status_code, response.text)
        # 001's get-current answers "not logged in" in its own envelope rather than the admin.
        current = await machine.get("/user/get-current")
        assert current.json()["response"] == "未登录", current.text
    await admin.aclose()


async def test_a_service_refuses_an_api_key_identity_outside_the_ai_routes(platform):
    """Defence in depth: even a correctly signed identity from a key opens no user route."""
    admin = await admin_client(platform)
    admin_id = await _root_admin_id(admin)
    await admin.aclose()
    key_identity = Identity(admin_id, "k", "apikey", via="api_key", credential="lh_x")
    headers = {IDENTITY_HEADER: sign_identity(key_identity, platform.secret)}
    async with httpx.AsyncClient(base_url=platform.service_url("auth"), timeout=10) as auth:
        response = await auth.get(f"/user/userinfo/{admin_id}", headers=headers)
        assert response.status_code == 401, response.text
        response = await auth.post("/user/recharge", json={"amount": 5}, headers=headers)
        assert response.status_code == 401, response.text


async def test_a_ban_ends_the_users_sessions_and_api_keys_at_once(platform, mailbox):
    root = await admin_client(platform)
    root_profile = (await root.get(f"/user/userinfo/{await _root_admin_id(root)}")).json()["data"]
    second = gateway_client(platform)
    account = await signup(second, mailbox, role="admin", invite_code=root_profile["invite_code"])
    key = await _new_key(second)
    async with gateway_client(platform, headers={"X-API-Key": key}) as machine:
        assert (await machine.post(f"{FACE}/version")).status_code == 200
        assert (await root.post(f"/user/ban_user/{account.user_id}")).json()["code"] == 0
        assert (await machine.post(f"{FACE}/version")).status_code == 401
    assert (await second.get(f"/user/userinfo/{account.user_id}")).status_code == 401
    theirs = [k for k in (await root.get("/user/api_keys")).json()["data"] if k["created_by"] == account.user_id]
    assert theirs and all(k["revoked"] for k in theirs)
    await root.post(f"/user/unban_user/{account.user_id}")
    await second.aclose()
    await root.aclose()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Referer": "https://evil.example/page"},
        {"Sec-Fetch-Site": "cross-site"},  # a page that suppressed its Referer
    ],
)
async def test_a_cross_site_get_that_writes_with_a_cookie_needs_the_csrf_token(platform, mailbox, headers):
    owner, _ = await user_client(platform, mailbox)
    name = unique("C")
    assert (await owner.post(f"{FACE}/create/collection", json={"collection_name": name})).json()["err_code"] == 0
    # 002 answers GET like POST, so a link another site shows would delete the collection.
    attack = await owner.get(f"{FACE}/delete/collection", params={"collection_name": name}, headers=headers)
    assert attack.status_code == 403, attack.text
    status = await owner.post(f"{FACE}/collection/status", json={"collection_name": [name]})
    assert name in status.text
    # The same GET from a client that is not a browser (no Origin) or from the console passes.
    same_site = {"Origin": platform.gateway_url, "Sec-Fetch-Site": "same-origin"}
    deleted = await owner.get(f"{FACE}/delete/collection", params={"collection_name": name}, headers=same_site)
    assert deleted.json()["err_code"] == 0, deleted.text
    await owner.aclose()
