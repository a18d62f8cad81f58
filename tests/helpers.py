"""Accounts for tests, made through the gateway the way a client makes them; `eventually` for what happens
after an answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from shared.launcher import Platform
from shared.sessions import SESSION_COOKIE
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, Mailbox, gateway_client, unique

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 10, interval: float = 0.1, what: str = "the condition"
) -> T:
    """Calls `check` until it returns something other than None or False, and returns that; fails the test
    when `timeout` seconds pass first. For what happens after an answer: outbox deliveries, time-outs, replicas."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not met within {timeout:g} s (last: {result!r})")
        await asyncio.sleep(interval)


@dataclass
class Account:
    user_id: int
    user_name: str
    password: str
    role: str
    email: str = ""
    invite_code: str = ""


async def send_code(client: httpx.AsyncClient, mailbox: Mailbox, email: str) -> str:
    response = await client.post("/user/get_verifycode", json={"email": email})
    assert response.status_code == 200, response.text
    return await mailbox.code_for(email)


async def signup(
    client: httpx.AsyncClient, mailbox: Mailbox, role: str = "demand", invite_code: str | None = None
) -> Account:
    """Registers a 003 account (with its email code) and logs `client` in as it."""
    email = f"{unique('mail')}@example.com"
    code = await send_code(client, mailbox, email)
    name, password = unique("user_"), "pass-word-1"
    response = await client.post(
        "/user/register",
        json={
            "user_name": name,
            "password": password,
            "user_type": role,
            "invite_code": invite_code,
            "email": email,
            "verifycode": code,
        },
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    await login(client, name, password)
    return Account(data["user_id"], name, password, role, email, data["invite_code"])


async def login(client: httpx.AsyncClient, user_name: str, password: str) -> dict:
    response = await client.post("/user/login", json={"user_name": user_name, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["data"]


_admin_sessions: dict[str, str] = {}


async def admin_client(platform: Platform) -> httpx.AsyncClient:
    """A client logged in as the bootstrap admin. The session is made once per run and shared: the
    admin's logins would otherwise run into the per-account login rate limit."""
    client = gateway_client(platform)
    token = _admin_sessions.get(platform.gateway_url)
    if token is None:
        await login(client, ADMIN_USER, ADMIN_PASSWORD)
        _admin_sessions[platform.gateway_url] = client.cookies[SESSION_COOKIE]
    else:
        client.cookies.set(SESSION_COOKIE, token)
    return client


async def user_client(platform: Platform, mailbox: Mailbox, role: str = "demand") -> tuple[httpx.AsyncClient, Account]:
    client = gateway_client(platform)
    return client, await signup(client, mailbox, role)
