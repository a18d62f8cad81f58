"""The test platform: a fresh PostgreSQL database and Redis namespace per run, an SMTP server that
catches mail, and every service plus the gateway started on free ports (tools/throwaway_platform.py).
Tests talk to the gateway over HTTP as a client would.

PostgreSQL and Redis come from LABELHIVE_TEST_DATABASE_URL / LABELHIVE_TEST_REDIS_URL, defaulting to
the local servers (127.0.0.1:5432, user postgres; 127.0.0.1:6379); when those are not reachable the
embedded servers are used instead.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from redis.asyncio import Redis

from shared.launcher import ROOT, EmbeddedServers, Platform, free_port
from tools.throwaway_platform import Backing, throwaway_backing, throwaway_platform

ADMIN_USER = "root_admin"
ADMIN_PASSWORD = "Admin-pass-1"
REJECTED_MAIL_DOMAIN = "rejected.example"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Mailbox:
    """Mail received by the test SMTP server, by recipient."""

    port: int = 0
    messages: dict[str, list[str]] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.endswith("@" + REJECTED_MAIL_DOMAIN):
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        body = message_from_bytes(envelope.content).get_payload(decode=True).decode()
        for rcpt in envelope.rcpt_tos:
            self.messages.setdefault(rcpt.lower(), []).append(body)
        return "250 Message accepted"

    async def code_for(self, email: str, timeout: float = 5) -> str:
        from tests.helpers import eventually  # not at the top: tests.helpers imports this module

        async def received() -> list[str] | None:
            return self.messages.get(email.lower())

        mails = await eventually(received, timeout=timeout, interval=0.05, what=f"a mail to {email}")
        match = re.search(r"\b(\d{6})\b", mails[-1])
        assert match, mails[-1]
        return match.group(1)


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@dataclass(frozen=True)
class Servers:
    """The PostgreSQL (a superuser's URL) and Redis servers the run's throw-away backings are made on."""

    admin_url: str
    redis_url: str


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    embedded = EmbeddedServers(ROOT / "var" / "test-servers")
    try:
        admin_url = os.environ.get("LABELHIVE_TEST_DATABASE_URL") or (
            "postgresql://postgres@127.0.0.1:5432/postgres"
            if _reachable("127.0.0.1", 5432)
            else embedded.postgres_url()
        )
        redis_url = os.environ.get("LABELHIVE_TEST_REDIS_URL") or (
            "redis://127.0.0.1:6379/0" if _reachable("127.0.0.1", 6379) else embedded.redis_url()
        )
        yield Servers(admin_url, redis_url)
    finally:
        embedded.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def backing(servers: Servers) -> AsyncIterator[Backing]:
    async with throwaway_backing(servers.admin_url, servers.redis_url, "labelhive_test") as test_backing:
        yield test_backing


def platform_env(backing: Backing, mailbox: Mailbox) -> dict[str, str]:
    """What a test platform runs with besides its backing (tests/scale/ starts a second one alike)."""
    return {
        "LABELHIVE_ADMIN_USER": ADMIN_USER,
        "LABELHIVE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LABELHIVE_SMTP_HOST": "127.0.0.1",
        "LABELHIVE_SMTP_PORT": str(mailbox.port),
        # Each test client comes from its own address (the X-Forwarded-For it sends through the
        # trusted local hop), so rate limits stay on without one test's logins throttling another's.
        "LABELHIVE_TRUSTED_PROXIES": "127.0.0.1",
        "LABELHIVE_DATA_DIR": str(ROOT / "var" / f"test-data-{backing.namespace}"),
        "LABELHIVE_UPLOAD_THROTTLE": "0",
    }


def platform_log_dir(backing: Backing) -> Path:
    return ROOT / "var" / "test-logs" / backing.namespace


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def platform(backing: Backing, mailbox: Mailbox) -> AsyncIterator[Platform]:
    async with throwaway_platform(
        backing, extra_env=platform_env(backing, mailbox), log_dir=platform_log_dir(backing)
    ) as running:
        yield running


def random_ip() -> str:
    return str(ipaddress.IPv4Address(random.randint(0x0B000000, 0xDEFFFFFF)))


SECRET_MARKERS = (
    "$argon2",
    '"password"',
    '"password_hash"',
    '"face_base64"',
    '"email_valid"',
    '"verifycode"',
    '"key_hash"',
)


async def _no_secrets(response: httpx.Response) -> None:
    """Every response any test sees is checked: no hash, code or secret field ever leaves."""
    # The API description names request fields such as "password"; it holds no values.
    if response.request.url.path == "/openapi.json":
        return
    if response.headers.get("content-type", "").startswith("application/json"):
        text = (await response.aread()).decode(errors="replace")
        leaked = [m for m in SECRET_MARKERS if m in text]
        assert not leaked, f"{response.request.method} {response.request.url.path} leaked {leaked}: {text[:300]}"


def gateway_client(platform: Platform, **kwargs: object) -> httpx.AsyncClient:
    """A client of the gateway coming from an address of its own (see LABELHIVE_TRUSTED_PROXIES)."""
    headers = {"X-Forwarded-For": random_ip(), **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.AsyncClient(
        base_url=platform.gateway_url, headers=headers, timeout=30, event_hooks={"response": [_no_secrets]}, **kwargs
    )  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def merged_openapi(platform: Platform) -> dict:
    """The gateway's /openapi.json with every service in it: what the declared-answer tests and the SDK read."""
    async with gateway_client(platform) as client:
        merged = (await client.get("/openapi.json")).json()
    assert merged["info"]["description"].endswith("Missing services: none"), merged["info"]["description"]
    return merged


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def admin(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as the bootstrap admin, shared by the whole run."""
    from tests.helpers import admin_client  # tests.helpers imports this module

    client = await admin_client(platform)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(platform) as c:
        yield c


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db(backing: Backing) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection, for assertions the API cannot make (sums, stored hashes)."""
    connection = await asyncpg.connect(backing.database_url)
    yield connection
    await connection.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis(backing: Backing) -> AsyncIterator[Redis]:
    connection = Redis.from_url(backing.redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"
