"""Recharge, withdraw, bank cards and VIP: documented errors, exact balances under concurrency and
idempotent replays."""

from __future__ import annotations

import asyncio

from tests.conftest import gateway_client, unique
from tests.helpers import login, user_client


async def _info(client, user_id: int) -> dict:
    return (await client.get(f"/user/userinfo/{user_id}")).json()["data"]


def _card() -> str:
    return str(int(unique("").encode().hex(), 16))[:16].rjust(12, "7")


async def test_recharge_needs_a_card_and_a_balance(platform, mailbox, db):
    client, account = await user_client(platform, mailbox)
    r = await client.post("/user/recharge", json={"amount": 10})
    assert r.status_code == 400 and r.json()["code"] == 37
    r = await client.post("/user/withdraw", json={"amount": 1})
    assert r.json()["code"] in (5, 37)
    card = _card()
    assert (await client.post("/user/modifybankaccount", json={"bank_account": card})).json()["code"] == 0
    info = await _info(client, account.user_id)
    assert info["bank_account"] == card and 1_000 <= info["account_balance"] <= 10_000

    r = await client.post("/user/recharge", json={"amount": info["account_balance"] + 1})
    assert r.json() == {"code": 5, "message": "balance not enough", "data": {}}
    assert (await client.post("/user/recharge", json={"amount": 50})).json()["code"] == 0
    after = await _info(client, account.user_id)
    assert after["score"] == 500
    assert after["account_balance"] == info["account_balance"] - 50
    rows = await db.fetch("SELECT kind, amount FROM auth.ledger_entries WHERE target = $1", f"user:{account.user_id}")
    assert [(r["kind"], r["amount"]) for r in rows] == [("recharge", 500)]
    await client.aclose()


async def test_withdraw(platform, mailbox):
    client, account = await user_client(platform, mailbox)
    await client.post("/user/modifybankaccount", json={"bank_account": _card()})
    await client.post("/user/recharge", json={"amount": 20})
    r = await client.post("/user/withdraw", json={"amount": 21})
    assert r.json() == {"code": 5, "message": "score not enough", "data": {}}
    before = await _info(client, account.user_id)
    assert (await client.post("/user/withdraw", json={"amount": 5})).json()["code"] == 0
    after = await _info(client, account.user_id)
    assert after["score"] == before["score"] - 50
    assert after["account_balance"] == before["account_balance"] + 5
    await client.aclose()


async def test_bad_amounts_are_1005(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    for amount in (0, -5, "10", 1.5, None):
        r = await client.post("/user/recharge", json={"amount": amount})
        assert (r.status_code, r.json()["code"]) == (400, 1005), amount
    await client.aclose()


async def test_a_card_bound_to_someone_else_cannot_be_taken(platform, mailbox):
    owner, _ = await user_client(platform, mailbox)
    thief, _ = await user_client(platform, mailbox)
    card = _card()
    await owner.post("/user/modifybankaccount", json={"bank_account": card})
    r = await thief.post("/user/modifybankaccount", json={"bank_account": card})
    assert r.status_code == 400 and r.json()["code"] == 38
    await owner.aclose()
    await thief.aclose()


async def test_replayed_recharge_moves_nothing(platform, mailbox, db):
    client, account = await user_client(platform, mailbox)
    await client.post("/user/modifybankaccount", json={"bank_account": _card()})
    headers = {"Idempotency-Key": unique("k")}
    for _ in range(3):
        r = await client.post("/user/recharge", json={"amount": 7}, headers=headers)
        assert r.json()["code"] == 0
    assert (await _info(client, account.user_id))["score"] == 70
    # The same key for a different amount is refused rather than silently ignored.
    r = await client.post("/user/recharge", json={"amount": 8}, headers=headers)
    assert r.status_code == 409
    count = await db.fetchval("SELECT count(*) FROM auth.ledger_entries WHERE target = $1", f"user:{account.user_id}")
    assert count == 1
    await client.aclose()


async def test_50_concurrent_recharges_and_withdrawals_leave_the_exact_balance(platform, mailbox):
    client, account = await user_client(platform, mailbox)
    await client.post("/user/modifybankaccount", json={"bank_account": _card()})
    await client.post("/user/recharge", json={"amount": 100})
    start = await _info(client, account.user_id)
    cookie = client.cookies

    async def call(path: str, amount: int) -> int:
        async with gateway_client(platform, cookies=cookie) as c:
            return (await c.post(path, json={"amount": amount})).json()["code"]

    calls = [call("/user/recharge", 3) for _ in range(25)] + [call("/user/withdraw", 2) for _ in range(25)]
    codes = await asyncio.gather(*calls)
    assert codes == [0] * 50
    end = await _info(client, account.user_id)
    assert end["score"] == start["score"] + 25 * 30 - 25 * 20
    assert end["account_balance"] == start["account_balance"] - 25 * 3 + 25 * 2
    await client.aclose()


async def test_concurrent_withdrawals_never_overdraw(platform, mailbox):
    client, account = await user_client(platform, mailbox)
    await client.post("/user/modifybankaccount", json={"bank_account": _card()})
    await client.post("/user/recharge", json={"amount": 10})  # 100 points

    async def withdraw() -> int:
        async with gateway_client(platform, cookies=client.cookies) as c:
            return (await c.post("/user/withdraw", json={"amount": 3})).json()["code"]

    codes = await asyncio.gather(*(withdraw() for _ in range(10)))
    assert codes.count(0) == 3 and codes.count(5) == 7
    assert (await _info(client, account.user_id))["score"] == 10
    await client.aclose()


async def test_vip_packages_levels_and_limits(platform, mailbox):
    client, account = await user_client(platform, mailbox)
    assert (await client.post("/user/getvip", json={"package_type": "month"})).json()["code"] == 5
    assert (await client.post("/user/getvip", json={"package_type": "decade"})).json()["code"] == 1005
    await client.post("/user/modifybankaccount", json={"bank_account": _card()})
    await client.post("/user/recharge", json={"amount": 200})  # 2000 points, not yet a member
    info = await _info(client, account.user_id)
    assert (info["membership_level"], info["grow_value"]) == (0, 0)

    assert (await client.post("/user/getvip", json={"package_type": "month"})).json()["code"] == 0
    info = await _info(client, account.user_id)
    assert info["score"] == 1900 and info["membership_level"] == 1 and info["vip_expire_time"] > 0
    first_expiry = info["vip_expire_time"]

    # A member's recharge grows the grow value by the points bought: 10 yuan -> 100 -> gold.
    await client.post("/user/recharge", json={"amount": 10})
    info = await _info(client, account.user_id)
    assert (info["grow_value"], info["membership_level"]) == (100, 2)

    # Buying again extends the membership, up to a year ahead; past that it is "already vip".
    assert (await client.post("/user/getvip", json={"package_type": "season"})).json()["code"] == 0
    info = await _info(client, account.user_id)
    assert round(info["vip_expire_time"] - first_expiry) == 90 * 86400
    r = await client.post("/user/getvip", json={"package_type": "year"})
    assert r.json() == {"code": 6, "message": "already vip", "data": {}}
    assert (await _info(client, account.user_id))["score"] == 1900 + 100 - 250
    await client.aclose()


async def test_login_refreshes_nothing_it_should_not(platform, mailbox):
    """Another user's profile shows only public fields."""
    client, account = await user_client(platform, mailbox)
    other, other_account = await user_client(platform, mailbox)
    public = await _info(client, other_account.user_id)
    for private in ("score", "invite_code", "bank_account", "account_balance", "vip_expire_time", "email"):
        assert private not in public
    assert public["user_name"] == other_account.user_name
    r = await client.get("/user/userinfo/999999")
    assert r.status_code == 404 and r.json() == {"code": 8, "message": "user does not exist", "data": {}}
    r = await client.get("/user/userinfo/abc")
    assert r.status_code == 400 and r.json()["code"] == 1005
    await login(client, account.user_name, account.password)
    await client.aclose()
    await other.aclose()
