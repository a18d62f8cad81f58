"""People and tasks for the tasks service's tests.

Accounts are made through the gateway (001's register for annotators and managers, 003's signup with
an email code where a test needs a requester the admin checks). Hashing a password costs a few hundred
milliseconds on a busy machine, so instead of logging each one in (a second hash), a test mints the
session the way auth's login does (`shared.sessions.SessionStore`) and reads the new user's id from
auth's table. Every request under test still goes through the gateway.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest_asyncio

from shared.redis import Keys
from shared.sessions import SessionStore
from tests.conftest import gateway_client, unique
from tests.helpers import eventually

PASSWORD = "pass-word-1"


def bank_card() -> str:
    return str(int(unique("").encode().hex(), 16))[:16].rjust(12, "7")


@dataclass
class Member:
    user_id: int
    user_name: str
    role: str
    client: httpx.AsyncClient = field(repr=False)


class People:
    def __init__(self, platform, db, redis, namespace: str) -> None:
        self.platform = platform
        self.db = db
        self.db_lock = asyncio.Lock()  # one asyncpg connection: one query at a time
        self.sessions = SessionStore(redis, Keys(namespace))
        self.clients: list[httpx.AsyncClient] = []

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = gateway_client(self.platform, headers=headers)
        self.clients.append(client)
        return client

    async def signed_in(self, user_name: str, role: str) -> Member:
        async with self.db_lock:
            user_id = await self.db.fetchval("SELECT id FROM auth.users WHERE user_name = $1", user_name)
        assert user_id is not None, user_name
        token = await self.sessions.create(user_id, user_name, role)
        return Member(user_id, user_name, role, self.client(token))

    async def annotator(self, area: str = "general") -> Member:
        name = unique("tagger_")
        async with gateway_client(self.platform) as anonymous:
            r = await anonymous.post("/user/register", json={"username": name, "password": PASSWORD, "user_area": area})
            assert r.json() == {"response": "注册成功"}, r.text
        return await self.signed_in(name, "tag")

    async def annotators(self, count: int, area: str = "general", concurrency: int = 4) -> list[Member]:
        slots = asyncio.Semaphore(concurrency)

        async def one() -> Member:
            async with slots:
                return await self.annotator(area)

        members = await asyncio.gather(*(one() for _ in range(count)))
        return sorted(members, key=lambda m: m.user_id)

    async def manager(self) -> Member:
        """A requester (001's manager: a `demand` user checked on registration)."""
        name = unique("manager_")
        async with gateway_client(self.platform) as anonymous:
            r = await anonymous.post("/user/register-manager", json={"username": name, "password": PASSWORD})
            assert r.json() == {"response": "注册成功"}, r.text
        return await self.signed_in(name, "demand")

    async def agent(self, mailbox) -> Member:
        from tests.helpers import signup

        client = self.client()
        account = await signup(client, mailbox, "agent")
        return Member(account.user_id, account.user_name, "agent", client)

    async def fund(self, member: Member, yuan: int) -> None:
        await self.fund_client(member.client, yuan)

    async def fund_client(self, client: httpx.AsyncClient, yuan: int) -> None:
        """Points bought with a (demo) bank card: 10 per yuan."""
        r = await client.post("/user/modifybankaccount", json={"bank_account": bank_card()})
        assert r.json()["code"] == 0, r.text
        r = await client.post("/user/recharge", json={"amount": yuan})
        assert r.json()["code"] == 0, r.text

    async def score(self, user_id: int) -> int:
        return await self.db.fetchval("SELECT score FROM auth.users WHERE id = $1", user_id)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def people(platform, db, redis, backing) -> AsyncIterator[People]:
    crowd = People(platform, db, redis, backing.namespace)
    yield crowd
    await crowd.close()


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


async def upload_texts(client: httpx.AsyncClient, texts: list[str]) -> list[dict[str, str]]:
    """003's upload_data (the dataset service): the files' tags, to create a task with."""
    archive = zip_of({f"{i}.txt": text.encode() for i, text in enumerate(texts, start=1)})
    r = await client.post(
        "/task/upload_data", params={"data_type": "text"}, files={"file": ("data.zip", archive, "application/zip")}
    )
    assert r.status_code == 200 and r.json()["code"] == 0, r.text
    return r.json()["data"]


def image_files(count: int) -> list[dict[str, str]]:
    """Image questions by URL (the tasks service keeps the reference; nothing fetches it here)."""
    return [{"filename": f"{i}.jpg", "tag": f"/picbed/{unique('img')}.jpg"} for i in range(1, count + 1)]


def task_body(files: list[dict[str, str]], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task_type": "text",
        "task_style": "pick the animal",
        "reward_per_q": 2,
        "time_limit_per_q": 60,
        "total_time_limit": 3600,
        "distribute_user_num": 1,
        "task_name": unique("task "),
        "accept_method": "manual",
        "files": files,
        "tag_type": ["cat", "dog", "bird"],
        "stdans_tag": "",
        "strategy": "toall",
        "input_type": [],
        "cut_num": "1",
    }
    body.update(overrides)
    return body


async def published(admin: httpx.AsyncClient, publisher: Member, body: dict[str, Any], distribute: bool = True) -> int:
    """Created, checked by the admin and (by default) distributed: the task id."""
    r = await publisher.client.post("/task/", json=body)
    assert r.status_code == 200 and r.json()["code"] == 0, r.text
    task_id = r.json()["data"]["task_id"]
    r = await admin.post(f"/task/check_task/{task_id}", json={"result": "accept"})
    assert r.json()["code"] == 0, r.text
    if distribute:
        r = await publisher.client.post(f"/task/distribute/{task_id}")
        assert r.status_code == 200 and r.json()["code"] == 0, r.text
    return task_id


async def answer_all(member: Member, task_id: int, answers: dict[int, Any]) -> None:
    for q_id, result in answers.items():
        r = await member.client.post(f"/task/upload_res/{task_id}/{q_id}", json={"result": result})
        assert r.status_code == 200 and r.json()["code"] == 0, r.text


async def task_view(client: httpx.AsyncClient, task_id: int) -> dict[str, Any]:
    r = await client.get(f"/task/{task_id}")
    assert r.status_code == 200 and r.json()["code"] == 0, r.text
    return r.json()["data"]


async def settled(db, task_id: int, timeout: float = 30) -> list[dict[str, Any]]:
    """Waits until the task's outbox is empty of pending ops; returns them all."""

    async def none_pending() -> list[dict[str, Any]] | None:
        rows = await db.fetch(
            "SELECT key, kind, status, body FROM tasks.outbox WHERE task_id = $1 ORDER BY id", task_id
        )
        return [dict(r) for r in rows] if all(r["status"] != "pending" for r in rows) else None

    return await eventually(none_pending, timeout=timeout, what=f"task {task_id}'s outbox without pending ops")


async def total_points(db) -> int:
    return await db.fetchval(
        "SELECT (SELECT coalesce(sum(score), 0) FROM auth.users) + (SELECT coalesce(sum(balance), 0) FROM auth.escrows)"
    )
