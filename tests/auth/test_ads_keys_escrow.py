"""Ads paid in points, API keys for the AI services, and the escrow API the tasks service uses."""

from __future__ import annotations

import asyncio

import httpx

from shared.http import ServiceClient
from tests.auth.test_points import _card
from tests.conftest import gateway_client, unique
from tests.helpers import admin_client, user_client


async def _funded(platform, mailbox, yuan: int = 300):
    client, account = await user_client(platform, mailbox)
    await client.post("/user/modifybankaccount", json={"bank_account": _card()})
    await client.post("/user/recharge", json={"amount": yuan})
    return client, account


async def test_ads_cost_a_point_per_second(platform, mailbox):
    client, account = await _funded(platform, mailbox, 300)  # 3000 points
    r = await client.post("/advertise/publish", json={"time": 600, "type": "horizontal", "url": "/picbed/a.jpg"})
    assert (r.status_code, r.json()["code"]) == (400, 1005)  # under the documented 30 minutes
    r = await client.post("/advertise/publish", json={"time": 3600, "type": "horizontal", "url": "/picbed/a.jpg"})
    assert r.json()["code"] == 83
    kind = unique("banner")
    r = await client.post("/advertise/publish", json={"time": 1800, "type": kind, "url": "/picbed/a.jpg"})
    assert r.json()["code"] == 0
    ad_id = r.json()["data"]["ad_id"]
    assert (await client.get(f"/user/userinfo/{account.user_id}")).json()["data"]["score"] == 1200

    mine = (await client.get("/advertise/get_my_ad")).json()["data"]
    assert [a["ad_id"] for a in mine] == [ad_id]
    assert mine[0]["expire_at"] - mine[0]["publish_at"] == 1800
    anonymous = gateway_client(platform)
    shown = (await anonymous.get("/advertise/get_ad", params={"type": kind, "num": 5})).json()["data"]
    assert shown == ["/picbed/a.jpg"]

    assert (await client.post(f"/advertise/renew/{ad_id}", json={"time": 1300})).json()["code"] == 83
    assert (await client.post(f"/advertise/renew/{ad_id}", json={"time": 1000})).json()["code"] == 0
    mine = (await client.get("/advertise/get_my_ad")).json()["data"]
    assert mine[0]["expire_at"] - mine[0]["publish_at"] == 2800
    other, _ = await user_client(platform, mailbox)
    assert (await other.post(f"/advertise/renew/{ad_id}", json={"time": 10})).json()["code"] == 86
    assert (await other.post("/advertise/renew/424242", json={"time": 10})).json()["code"] == 86
    for c in (client, anonymous, other):
        await c.aclose()


async def test_api_keys_are_admin_only_shown_once_and_revocable(platform, mailbox, db):
    admin = await admin_client(platform)
    demand, _ = await user_client(platform, mailbox)
    assert (await demand.post("/user/api_keys", json={"name": "x"})).json()["code"] == 1006

    created = (await admin.post("/user/api_keys", json={"name": "detector-client"})).json()
    assert created["code"] == 0
    key, key_id = created["data"]["key"], created["data"]["id"]
    listed = (await admin.get("/user/api_keys")).json()["data"]
    entry = next(k for k in listed if k["id"] == key_id)
    assert "key" not in entry and key.startswith(entry["prefix"])
    stored = await db.fetchval("SELECT key_hash FROM auth.api_keys WHERE id = $1", key_id)
    assert key not in stored

    async with gateway_client(platform, headers={"X-API-Key": key}) as machine:
        # A key opens the AI services; user and admin endpoints see no credential at all.
        assert (await machine.get("/api/data/getRecent", params={"limit": 1})).status_code == 200
        assert (await machine.get("/user/get-current")).json() == {"response": "未登录"}
        assert (await machine.get("/user/get_all_users")).status_code == 401
        assert (await admin.delete(f"/user/api_keys/{key_id}")).json()["data"]["revoked"] is True
        assert (await machine.get("/api/data/getRecent", params={"limit": 1})).status_code == 401
    assert (await admin.delete("/user/api_keys/99999")).status_code == 404
    await admin.aclose()
    await demand.aclose()


def _internal(platform, caller: str = "tasks", secret: str | None = None) -> ServiceClient:
    return ServiceClient("auth", platform.service_url("auth"), caller, secret or platform.secret)


async def test_escrow_hold_pay_refund_is_idempotent_and_conserves_points(platform, mailbox, db):
    publisher, owner = await _funded(platform, mailbox, 100)  # 1000 points
    annotator, worker = await user_client(platform, mailbox, "tag")
    auth = _internal(platform)
    escrow = unique("task-")
    total_before = await db.fetchval(
        "SELECT (SELECT sum(score) FROM auth.users) + (SELECT coalesce(sum(balance), 0) FROM auth.escrows)"
    )

    async def call(path: str, **body: object) -> httpx.Response:
        return await auth.request("POST", f"/internal/escrow/{path}", json={"escrow_id": escrow, **body})

    r = await call("hold", user_id=owner.user_id, amount=5000, idempotency_key="hold-too-much")
    assert (r.status_code, r.json()["code"]) == (400, 5)
    for _ in range(3):  # a retried hold moves the points once
        r = await call("hold", user_id=owner.user_id, amount=600, idempotency_key="hold-once")
        assert r.json()["data"].get("balance") == 600, r.text
    results = await asyncio.gather(
        *(call("payout", user_id=worker.user_id, amount=100, idempotency_key="payout-q1") for _ in range(5))
    )
    assert all(r.status_code == 200 for r in results)
    r = await call("payout", user_id=worker.user_id, amount=900, idempotency_key="pay-too-much")
    assert r.status_code == 409
    r = await call("refund", idempotency_key="refund-rest")
    assert r.json()["data"]["balance"] == 0
    assert (await call("refund", idempotency_key="refund-rest")).status_code == 200

    scores = {
        row["id"]: row["score"]
        for row in await db.fetch(
            "SELECT id, score FROM auth.users WHERE id = ANY($1)", [owner.user_id, worker.user_id]
        )
    }
    assert scores == {owner.user_id: 900, worker.user_id: 100}
    info = (await annotator.get(f"/user/userinfo/{worker.user_id}")).json()["data"]
    assert info["tag_score"] == 100
    total_after = await db.fetchval(
        "SELECT (SELECT sum(score) FROM auth.users) + (SELECT coalesce(sum(balance), 0) FROM auth.escrows)"
    )
    assert total_after == total_before
    await auth.aclose()
    await publisher.aclose()
    await annotator.aclose()


async def test_internal_api_refuses_unsigned_calls_and_is_not_routed(platform, client):
    forged = _internal(platform, secret="not-the-secret")
    r = await forged.request("POST", "/internal/escrow/refund", json={"escrow_id": "x", "idempotency_key": "abcdefgh"})
    assert r.status_code == 400 and r.json()["code"] == 1006
    await forged.aclose()
    r = await client.post("/internal/escrow/refund", json={"escrow_id": "x", "idempotency_key": "abcdefgh"})
    assert r.status_code == 404


async def test_grow_value_and_credit_adjustments_are_idempotent(platform, mailbox):
    client, account = await user_client(platform, mailbox, "tag")
    auth = _internal(platform)
    path = f"/internal/users/{account.user_id}"
    for _ in range(2):
        r = await auth.request("POST", f"{path}/grow_value", json={"amount": 10, "idempotency_key": "publish-1"})
        assert r.json()["data"]["grow_value"] == 10
        r = await auth.request("POST", f"{path}/credit", json={"delta": -30, "idempotency_key": "report-1"})
        assert r.json()["data"]["credit_score"] == 70
    r = await auth.request("POST", f"{path}/credit", json={"delta": -5, "idempotency_key": "report-1"})
    assert r.status_code == 409
    for i in range(4):  # credit stops at 0
        await auth.request("POST", f"{path}/credit", json={"delta": -30, "idempotency_key": f"report-more-{i}"})
    info = (await client.get(f"/user/userinfo/{account.user_id}")).json()["data"]
    assert (info["grow_value"], info["credit_score"]) == (10, 0)
    r = await auth.request("POST", "/internal/users/999999/credit", json={"delta": -1, "idempotency_key": "nobody-1"})
    assert r.status_code == 404

    page = (await auth.request("GET", "/internal/users", params={"role": "tag", "limit": 1000})).json()["data"]
    assert account.user_id in {u["user_id"] for u in page} and {u["user_type"] for u in page} == {"tag"}
    after = (await auth.request("GET", "/internal/users", params={"after_id": account.user_id})).json()["data"]
    assert all(u["user_id"] > account.user_id for u in after)
    await auth.aclose()
    await client.aclose()
