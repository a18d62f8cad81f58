"""Bounds on what auth's clients send: text lengths, ad URLs, the ad count, parallel code guesses."""

from __future__ import annotations

import asyncio

import pytest

from tests.auth.test_ads_keys_escrow import _funded
from tests.auth.test_register_login_003 import _code
from tests.conftest import unique
from tests.helpers import signup


async def test_parallel_code_guesses_are_counted_atomically(platform, client, mailbox):
    await signup(client, mailbox)
    email, verify = await _code(client, mailbox)
    wrong = "999999" if verify != "999999" else "888888"
    # Nine at once: past auth's cap of 5 wrong guesses per code, within the gateway's 10 per address
    # (so that the right code after them reaches auth).
    answers = await asyncio.gather(
        *(client.post("/user/change_email", json={"newemail": email, "verifycode": wrong}) for _ in range(9))
    )
    codes = sorted(r.json()["code"] for r in answers)
    assert codes == [45] * 4 + [46] * 5, codes  # exactly the cap was evaluated; the rest are out of guesses
    r = await client.post("/user/change_email", json={"newemail": email, "verifycode": verify})
    assert (r.status_code, r.json()["code"]) == (400, 45), r.text  # even the right code, once out of guesses


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/a.jpg",
        "ftp://example.com/a.jpg",
        "http://",
        "/user/logout",
        "https://a.example/x y.jpg",
    ],
)
async def test_ads_take_only_http_urls_and_image_bed_paths(platform, mailbox, url):
    client, _ = await _funded(platform, mailbox, 200)
    r = await client.post("/advertise/publish", json={"time": 1800, "type": unique("t"), "url": url})
    assert (r.status_code, r.json()["code"]) == (400, 1005), r.text
    assert "url" in r.json()["message"]
    await client.aclose()


async def test_ads_with_http_urls_are_published(platform, mailbox):
    client, _ = await _funded(platform, mailbox, 400)
    kind = unique("t")
    for url in ("https://cdn.example.com/ad.png", "HTTP://cdn.example.com/b.png"):
        r = await client.post("/advertise/publish", json={"time": 1800, "type": kind, "url": url})
        assert r.json()["code"] == 0, r.text
    await client.aclose()


async def test_get_ad_caps_a_large_num_quietly(platform, mailbox):
    client, _ = await _funded(platform, mailbox, 200)
    kind = unique("t")
    assert (
        await client.post("/advertise/publish", json={"time": 1800, "type": kind, "url": "/picbed/one.jpg"})
    ).json()["code"] == 0
    for num in (100, 10**30):
        r = await client.get("/advertise/get_ad", params={"type": kind, "num": num})
        assert (r.status_code, r.json()["data"]) == (200, ["/picbed/one.jpg"]), r.text
    await client.aclose()


async def test_an_experts_area_has_a_bounded_length(client):
    r = await client.post(
        "/user/register", json={"username": unique("exp"), "password": "secret-1", "user_area": "区" * 65}
    )
    assert r.status_code == 400 and set(r.json()) == {"response"}, r.text
    assert "user_area" in r.json()["response"]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/user/login", {"user_name": "someone", "password": "p" * 5000}),  # no 5 kB password is hashed
        ("/login", {"username": "someone", "password": "p" * 5000}),
        ("/user/register-manager", {"username": "someone", "password": "p" * 5000}),
    ],
)
async def test_overlong_passwords_are_refused_before_hashing(client, path, body):
    r = await client.post(path, json=body)
    assert r.status_code == 400, r.text
    text = r.text
    assert "password" in text and "256" in text, text
