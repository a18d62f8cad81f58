"""The gateway as clients and operators see it: routing and envelopes, identity hand-off, CSRF,
rate limits, docs, health, metrics and failing upstreams."""

from __future__ import annotations

import asyncio
import time

from shared.identity import IDENTITY_HEADER, Identity, sign_identity
from tests.conftest import gateway_client, unique
from tests.helpers import user_client


async def test_health_reports_every_service(client, platform):
    body = (await client.get("/healthz")).json()
    assert body["code"] == 0
    assert set(body["data"]["services"]) == set(platform.services)
    assert all(s["status"] == "ok" for s in body["data"]["services"].values())


async def test_health_calls_at_once_share_one_round_of_checks(client, platform):
    """Callers that come while a round of checks runs get its answer: whole, and each its own response."""
    answers = await asyncio.gather(*(client.get("/healthz") for _ in range(30)))
    assert {a.status_code for a in answers} == {200}
    bodies = [a.json() for a in answers]
    assert all(set(b["data"]["services"]) == set(platform.services) for b in bodies)
    assert all(a.headers["content-type"] == "application/json" for a in answers)


async def test_docs_are_one_offline_swagger_with_every_service(client):
    page = await client.get("/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    asset = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/user/register",
        "/user/login",
        "/api/users",
        "/login",
        "/advertise/publish",
        "/user/api_keys",
        "/get_csrf_token",
        "/healthz",
    ):
        assert path in spec["paths"], path
    assert not any(p.startswith("/internal") for p in spec["paths"])


async def test_unknown_paths_answer_in_the_003_envelope(client):
    r = await client.get("/no/such/path")
    assert r.status_code == 404 and r.json() == {"code": 1000, "message": "NOT_FOUND", "data": {}}


async def test_request_id_is_echoed_and_propagated(client):
    r = await client.get("/user/get-current", headers={"X-Request-ID": "abc123def"})
    assert r.headers["x-request-id"] == "abc123def"
    r = await client.post("/api/users", json={})
    assert r.json()["requestID"] == r.headers["x-request-id"]


async def test_a_forged_identity_header_is_ignored(client, platform):
    forged = sign_identity(Identity(1, "root", "admin"), "guessed-secret")
    r = await client.get("/user/get_all_users", headers={IDENTITY_HEADER: forged})
    assert r.status_code == 401
    # Even a correctly signed identity sent by a client is stripped by the gateway.
    genuine = sign_identity(Identity(1, "root", "admin"), platform.secret)
    r = await client.get("/user/get_all_users", headers={IDENTITY_HEADER: genuine})
    assert r.status_code == 401


async def test_csrf_guards_cross_site_cookie_writes_only(platform, mailbox):
    client, account = await user_client(platform, mailbox)
    evil = {"Origin": "https://evil.example"}
    r = await client.post("/user/reset_invite_code", headers=evil)
    assert r.status_code == 403 and r.json()["code"] == 1006

    token = (await client.get("/get_csrf_token")).json()["data"]["csrf_token"]
    for header in ("X-CSRFToken", "X-CSRF-Token", "X-XSRF-TOKEN"):
        r = await client.post("/user/reset_invite_code", headers={**evil, header: token})
        assert r.json()["code"] == 0, header
    # A token that is not the cookie's does not pass.
    r = await client.post("/user/reset_invite_code", headers={**evil, "X-CSRFToken": token + "x"})
    assert r.status_code == 403

    # No Origin (000/001/002/004 clients), our own origin, and Bearer tokens need no token.
    client.cookies.delete("csrftoken")
    assert (await client.post("/user/reset_invite_code")).json()["code"] == 0
    own = {"Origin": platform.gateway_url}
    assert (await client.post("/user/reset_invite_code", headers=own)).json()["code"] == 0
    session = client.cookies.get("labelhive_session")
    async with gateway_client(platform, headers={"Authorization": f"Bearer {session}", **evil}) as bearer:
        assert (await bearer.post("/user/reset_invite_code")).json()["code"] == 0
    await client.aclose()


async def test_login_is_rate_limited_per_account_and_per_address(platform):
    name = unique("victim")
    async with gateway_client(platform) as c:
        await c.post("/api/users", json={"user_name": name, "password": "123456"})
    codes = []
    # Each try from a new address: the per-account limit (10 a minute) still applies. The window is a
    # fixed minute, so a run that crosses its boundary may get up to twice that before the refusal.
    while len(codes) < 25 and 429 not in codes:
        async with gateway_client(platform) as c:
            r = await c.post("/user/login", json={"user_name": name, "password": "wrong-guess"})
            codes.append(r.status_code)
    assert codes[-1] == 429 and set(codes[:-1]) == {400} and 10 <= len(codes) - 1 <= 20, codes
    assert r.json() == {"code": 1008, "message": "too many requests", "data": {}}
    assert r.headers["retry-after"]

    async with gateway_client(platform) as c:  # one address trying many accounts
        statuses = [
            (await c.get("/user/login", params={"username": unique("u"), "password": "x"})).status_code
            for _ in range(62)
        ]
        assert statuses[-1] == 429 and r.status_code == 429
        assert (await c.get("/user/login", params={"username": "a", "password": "b"})).json() == {
            "response": "请求过于频繁,请稍后再试"
        }


async def test_an_upstream_that_is_down_answers_503_quickly(platform, client):
    platform.stop_service("auth")
    try:
        started = time.monotonic()
        r = await client.post("/user/login", json={"user_name": "x", "password": "y"})
        assert r.status_code == 503 and r.json()["code"] == 1002
        r = await client.get("/user/list")
        assert r.status_code == 503 and set(r.json()) == {"response"}
        assert time.monotonic() - started < 5
        assert (await client.get("/healthz")).status_code == 503
    finally:
        platform.start_service("auth")
        await platform.wait_ready(f"{platform.service_url('auth')}/readyz", "auth")
    assert (await client.get("/healthz")).status_code == 200


async def test_metrics_are_exposed(client):
    await client.get("/user/get-current")
    text = (await client.get("/metrics")).text
    assert "labelhive_http_requests_total" in text and 'service="gateway"' in text
