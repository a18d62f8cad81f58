"""Accounts the dataset API tests share (one of each per module: signing up is the slow part)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from tests.helpers import Account, user_client


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def manager(platform, mailbox) -> AsyncIterator[tuple[httpx.AsyncClient, Account]]:
    client, account = await user_client(platform, mailbox, "demand")
    yield client, account
    await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def other_manager(platform, mailbox) -> AsyncIterator[tuple[httpx.AsyncClient, Account]]:
    client, account = await user_client(platform, mailbox, "demand")
    yield client, account
    await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tagger(platform, mailbox) -> AsyncIterator[tuple[httpx.AsyncClient, Account]]:
    client, account = await user_client(platform, mailbox, "tag")
    yield client, account
    await client.aclose()
