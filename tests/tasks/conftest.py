"""Unit tests of the tasks domain: services/tasks' functions called directly, without the HTTP layer.

- The database is real: a database of its own on the test server with the tasks schema migrated
  (tests/shared/databases.py), made once per run. Each test's session is bound to one connection
  inside an outer transaction that is rolled back when the test ends; the session joins it with
  `join_transaction_mode="create_savepoint"`, so what the code commits (the time-out worker's
  `sessionmaker.begin()`) is a savepoint, and nothing a test writes outlives it.
- The peers are the real clients (`AuthClient`, `DatasetClient` on a `ServiceClient`) over
  `httpx.MockTransport`: `FakeAuth` and `FakeDataset` answer the routes the tasks service calls the way
  services/auth/api/internal.py and services/dataset/api/internal.py do, and record every call.
- `world` bundles it all with the steps a test arranges through the domain itself (a task created,
  checked and distributed; an annotator's answers), so that each test reads as its own scenario.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from services.tasks import distribution, labeling, lifecycle
from services.tasks.models import Assignment, OutboxOp, Task
from services.tasks.peers import AuthClient, DatasetClient, Profile
from services.tasks.repository import TasksRepository
from services.tasks.schemas import TaskBody
from services.tasks.settings import TasksSettings
from shared.db import asyncpg_url
from shared.http import ServiceClient
from shared.identity import CALLER_HEADER, IDENTITY_HEADER, Identity, InvalidSignature, verify_caller, verify_identity
from shared.redis import Keys
from tests.conftest import unique
from tests.shared.databases import fresh_backing
from tools.throwaway_platform import Backing, delete_namespace

SECRET = "unit-test-internal-secret"
ADMIN = Identity(1, "admin", "admin")

T = TypeVar("T")


def ok(data: Any) -> httpx.Response:
    """003's envelope, as shared.envelopes.ok_003 writes it."""
    return httpx.Response(200, json={"code": 0, "message": "succeed", "data": data})


def refused(status: int, code: int | str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message, "data": {}})


@dataclass(frozen=True)
class Call:
    """One request a peer received."""

    method: str
    path: str
    params: dict[str, str]
    body: Any
    identity: Identity | None  # the end user the call was made for, when it carried one


class RecordingPeer:
    """A peer service on `httpx.MockTransport`: checks the caller's signature as `InternalCaller` does,
    records the call and answers it with `route` (a 404 NOT_FOUND for a route it does not have)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[Call] = []

    def route(self, call: Call) -> httpx.Response | None:
        raise NotImplementedError

    def handle(self, request: httpx.Request) -> httpx.Response:
        try:
            caller = verify_caller(request.headers.get(CALLER_HEADER, ""), SECRET)
        except InvalidSignature:
            return refused(401, 1001, "NOT_LOGGED_IN")
        assert caller == "tasks", caller
        signed = request.headers.get(IDENTITY_HEADER)
        call = Call(
            request.method,
            request.url.path,
            dict(request.url.params),
            json.loads(request.content) if request.content else None,
            verify_identity(signed, SECRET) if signed else None,
        )
        self.calls.append(call)
        return self.route(call) or refused(404, 1000, "NOT_FOUND")

    def client(self) -> ServiceClient:
        return ServiceClient(
            self.name, f"http://{self.name}.test", "tasks", SECRET, transport=httpx.MockTransport(self.handle)
        )

    def called(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if (c.method, c.path) == (method, path)]


class FakeAuth(RecordingPeer):
    """Auth's users and escrows as the tasks service sees them: profiles (`public_profile` plus the
    area), a user's own points (/user/userinfo) and escrow holds that take only what the escrow
    lacks, refuse with 003's code 5 when the publisher's points fall short, and move nothing on a
    replayed key (services/auth/escrow.py)."""

    def __init__(self) -> None:
        super().__init__("auth")
        self.users: dict[int, Profile] = {}
        self.scores: dict[int, int] = {}
        self.escrows: dict[str, int] = {}
        self.hold_keys: set[str] = set()

    def add(self, user_id: int, user_type: str, **profile: Any) -> Profile:
        self.users[user_id] = {
            "user_id": user_id,
            "user_name": f"{user_type}_{user_id}",
            "user_type": user_type,
            "membership_level": 0,
            "credit_score": 100,
            "grow_value": 0,
            "is_checked": user_type != "demand",
            "is_banned": False,
            "tag_score": 0,
            "area": "general",
            **profile,
        }
        self.scores.setdefault(user_id, 0)
        return self.users[user_id]

    def route(self, call: Call) -> httpx.Response | None:
        if call.method == "GET" and call.path == "/internal/users":
            after, limit = int(call.params.get("after_id", 0)), int(call.params.get("limit", 1000))
            role = call.params.get("role")
            page = [
                p for uid, p in sorted(self.users.items()) if uid > after and (role is None or p["user_type"] == role)
            ]
            return ok(page[:limit])
        if call.method == "POST" and call.path == "/internal/users/batch":
            return ok([self.users[uid] for uid in sorted(set(call.body["user_ids"])) if uid in self.users])
        if match := re.fullmatch(r"/internal/users/(\d+)", call.path):
            profile = self.users.get(int(match[1]))
            return ok(profile) if profile else refused(404, 8, "user does not exist")
        if match := re.fullmatch(r"/user/userinfo/(\d+)", call.path):
            user_id = int(match[1])
            if call.identity is None or call.identity.user_id != user_id or user_id not in self.users:
                return refused(400, 19, "no permission")
            return ok({**self.users[user_id], "score": self.scores[user_id]})
        if call.method == "POST" and call.path == "/internal/escrow/hold":
            return self._hold(call.body)
        return None

    def _hold(self, body: dict[str, Any]) -> httpx.Response:
        escrow, owner, amount, key = body["escrow_id"], body["user_id"], body["amount"], body["idempotency_key"]
        if owner not in self.users:
            return refused(404, 1000, f"user {owner} does not exist")
        if key not in self.hold_keys:
            lacking = amount - self.escrows.get(escrow, 0)
            if lacking > self.scores[owner]:
                return refused(400, 5, "score not enough")
            self.scores[owner] -= lacking
            self.escrows[escrow] = amount
            self.hold_keys.add(key)
        return ok({"escrow_id": escrow, "owner_id": owner, "balance": self.escrows[escrow]})


class FakeDataset(RecordingPeer):
    """The dataset service's texts of 003's upload_data (GET /internal/texts/{id})."""

    def __init__(self) -> None:
        super().__init__("dataset")
        self.texts: dict[int, dict[str, Any]] = {}

    def add_text(self, text_id: int, text: str, owner_id: int) -> str:
        self.texts[text_id] = {
            "text_id": text_id,
            "filename": f"{text_id}.txt",
            "text": text,
            "dataset_id": 1,
            "owner_id": owner_id,
        }
        return str(text_id)

    def route(self, call: Call) -> httpx.Response | None:
        if call.method == "GET" and (match := re.fullmatch(r"/internal/texts/(\d+)", call.path)):
            found = self.texts.get(int(match[1]))
            return ok(found) if found else refused(404, 1000, "text not found")
        return None


@dataclass
class World:
    """One test's tasks service: the repository on the rolled-back session, the peers and the settings,
    and the steps tests arrange with."""

    repo: TasksRepository
    sessionmaker: async_sessionmaker[AsyncSession]
    auth: FakeAuth
    auth_client: AuthClient
    settings: TasksSettings
    next_id: Callable[[], int] = field(repr=False)

    @property
    def session(self) -> AsyncSession:
        return self.repo.session

    def requester(self, score: int = 10_000) -> Identity:
        """A checked `demand` user with `score` points."""
        user_id = self.next_id()
        self.auth.add(user_id, "demand", is_checked=True)
        self.auth.scores[user_id] = score
        return Identity(user_id, f"demand_{user_id}", "demand")

    def annotator(self, **profile: Any) -> Identity:
        user_id = self.next_id()
        self.auth.add(user_id, "tag", **profile)
        return Identity(user_id, f"tag_{user_id}", "tag")

    def annotators(self, count: int, **profile: Any) -> list[Identity]:
        return [self.annotator(**profile) for _ in range(count)]

    async def call(self, work: Awaitable[T]) -> T:
        """`work` as one request's unit of work (shared/db.py): committed when it returns (a savepoint
        here), rolled back when it raises. Objects it loaded are stale after a rollback: reload them."""
        try:
            result = await work
        except BaseException:
            await self.session.rollback()
            raise
        await self.session.commit()
        return result

    async def created(self, publisher: Identity, **fields: Any) -> Task:
        q_num = fields.pop("q_num", 3)
        body = {
            "task_type": "text",
            "reward_per_q": 5,
            "time_limit_per_q": 60,
            "total_time_limit": 3600,
            "distribute_user_num": 2,
            "task_name": unique("task "),
            "accept_method": "manual",
            "strategy": "toall",
            "tag_type": ["cat", "dog"],
            "files": [{"filename": f"{i}.txt", "tag": str(100 + i)} for i in range(1, q_num + 1)],
            **fields,
        }
        return await self.call(lifecycle.create(self.repo, publisher, TaskBody(**body)))

    async def checked(self, publisher: Identity, **fields: Any) -> int:
        """A task created and checked by the admin: its id (objects do not outlive a failed call)."""
        task = await self.created(publisher, **fields)
        await self.call(lifecycle.check(self.repo, ADMIN, task.id, "accept"))
        return task.id

    async def distribute(self, publisher: Identity, task_id: int) -> dict[str, Any]:
        return await self.call(distribution.distribute(self.repo, self.auth_client, self.settings, publisher, task_id))

    async def distributed(self, publisher: Identity, **fields: Any) -> int:
        task_id = await self.checked(publisher, **fields)
        await self.distribute(publisher, task_id)
        return task_id

    async def accept(self, annotator: Identity, task_id: int) -> Assignment:
        work = distribution.accept(self.repo, self.auth_client, self.settings, annotator, task_id)
        return (await self.call(work))[1]

    async def refuse(self, annotator: Identity, task_id: int) -> dict[str, Any]:
        return await self.call(distribution.refuse(self.repo, self.auth_client, self.settings, annotator, task_id))

    async def redistribute(self, publisher: Identity, task_id: int) -> dict[str, Any]:
        work = distribution.redistribute(self.repo, self.auth_client, self.settings, publisher, task_id)
        return await self.call(work)

    async def answer(self, annotator: Identity, task_id: int, answers: dict[int, str]) -> dict[str, Any]:
        """Submits `answers` (q_id -> label) in order, one request each; returns the last one's answer."""
        last: dict[str, Any] = {}
        for q_id, label in answers.items():
            last = await self.call(labeling.submit(self.repo, self.settings, annotator, task_id, q_id, label, None))
        return last

    async def task(self, task_id: int) -> Task:
        found = await self.repo.task(task_id, lock=True)  # reloaded: SQL may have changed it
        assert found is not None
        return found

    async def assignment(self, task_id: int, user_id: int) -> Assignment:
        found = await self.repo.assignment(task_id, user_id, lock=True)  # reloaded: SQL may have changed it
        assert found is not None
        return found

    async def outbox(self, task_id: int | None = None) -> list[OutboxOp]:
        query = select(OutboxOp).order_by(OutboxOp.id)
        if task_id is not None:
            query = query.where(OutboxOp.task_id == task_id)
        return list((await self.session.execute(query)).scalars())


class OneConnectionRepository(TasksRepository):
    """The repository on the test's connection throughout.

    In the service a toall accept runs its two statements on a pooled connection of its own, in
    autocommit (`own_connection`), which the test's rollback could not undo. Here the same statements
    run on the test's connection, inside its transaction: the same SQL and locks, only committed with
    the test's savepoint instead of at once.
    """

    @contextlib.asynccontextmanager
    async def own_connection(self) -> AsyncIterator[asyncpg.Connection]:
        raw = await (await self.session.connection()).get_raw_connection()
        assert raw.driver_connection is not None
        yield raw.driver_connection


@pytest_asyncio.fixture(scope="session")
async def tasks_backing(backing: Backing) -> AsyncIterator[Backing]:
    """A database of its own with the tasks schema: the platform's services never write to it."""
    async with fresh_backing(backing, "tasks") as own:
        yield own


@pytest_asyncio.fixture(scope="session")
async def engine(tasks_backing: Backing) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(asyncpg_url(tasks_backing.database_url), poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def sessionmaker(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on one connection whose outer transaction is rolled back after the test."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        try:
            yield async_sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        finally:
            await outer.rollback()


@pytest_asyncio.fixture
async def world(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[World]:
    auth = FakeAuth()
    client = auth.client()
    ids = iter(range(1000, 10**6))
    settings = TasksSettings(internal_secret=SECRET)
    async with sessionmaker() as session:
        # One order cursor per test: the rolled-back transaction starts it at 0 every time.
        yield World(OneConnectionRepository(session), sessionmaker, auth, AuthClient(client), settings, ids.__next__)
    await client.aclose()


@pytest_asyncio.fixture
async def dataset(backing: Backing) -> AsyncIterator[tuple[FakeDataset, DatasetClient]]:
    """The dataset peer and its client, caching texts in a Redis namespace of the test's own."""
    fake = FakeDataset()
    client = fake.client()
    namespace = unique("labelhive_unit_")
    redis = Redis.from_url(backing.redis_url)
    try:
        yield fake, DatasetClient(client, redis, Keys(namespace), concurrency=4)
    finally:
        await client.aclose()
        await redis.aclose()
        await delete_namespace(backing.redis_url, namespace)
