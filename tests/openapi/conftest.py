"""What the OpenAPI tests share: the declared answers of auth and tasks, and people whose clients check
every success answer they receive against them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from shared.launcher import Platform
from tests.helpers import admin_client
from tests.openapi.declared_answers import DeclaredAnswers
from tests.tasks_api.conftest import People

CHECKED_SERVICES = ("auth", "tasks")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def declared(merged_openapi: dict) -> DeclaredAnswers:
    return DeclaredAnswers(merged_openapi, CHECKED_SERVICES)


class CheckedPeople(People):
    """tests/tasks_api's people, each with a client whose success answers are checked."""

    def __init__(self, declared: DeclaredAnswers, *args: object) -> None:
        super().__init__(*args)
        self.declared = declared

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        return self.declared.watch(super().client(token))

    def anonymous(self) -> httpx.AsyncClient:
        return self.client()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def checked_people(platform, db, redis, backing, declared) -> AsyncIterator[CheckedPeople]:
    crowd = CheckedPeople(declared, platform, db, redis, backing.namespace)
    yield crowd
    await crowd.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def checked_admin(platform: Platform, declared: DeclaredAnswers) -> AsyncIterator[httpx.AsyncClient]:
    client = declared.watch(await admin_client(platform))
    yield client
    await client.aclose()
