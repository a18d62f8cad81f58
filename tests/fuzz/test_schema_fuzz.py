"""A schema-driven fuzz run over every operation of the gateway's merged `/openapi.json` (issue 9):
schemathesis generates valid and invalid requests (documented examples, boundary values, then random
ones) from a fixed seed, deterministically, and sends them anonymously and with a session of each
role. A request, however malformed, must get a 4xx, never a 5xx; every answer must be one the schema
declares: its status code, its content type and, where one is declared, its body's schema.

The run is bounded (MAX_EXAMPLES random cases per operation and mode) to stay within a few minutes on
a 2-core machine; it runs last in the session (see conftest.py) because what it does as an admin and
to the rate limits must not change the ground under other tests.
"""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio
import requests
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from shared.launcher import Platform
from shared.sessions import SESSION_COOKIE
from tests.conftest import ADMIN_USER, Mailbox, gateway_client, random_ip
from tests.helpers import admin_client, signup

SEED = 20240909
MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

CONFIG = {
    "seed": SEED,
    "generation": {
        "mode": "all",  # valid requests and invalid ones (wrong types, missing fields, out-of-range values)
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "no-shrink": True,  # a failure is reported as found: shrinking it costs minutes per operation
        "database": "none",  # no examples replayed from earlier runs: every run sends the same requests
    },
    # No state kept between runs (it would replay earlier runs' failures first): every run is the same.
    "cache": {"enabled": False},
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
}

# Operations that would end the fuzzing session itself, so that the rest of the run would silently
# fuzz anonymously. They are fuzzed in the anonymous run.
SESSION_ENDING = [
    ("GET", "/user/logout"),  # 001's logout
    ("POST", "/user/logout"),  # 003's logout
]
# An admin banning user ids the fuzzer picks bans the fuzzing admin (ending its session: see above)
# and the other fuzzing accounts. Every other role's run fuzzes it (and must be refused).
ADMIN_SESSION_ENDING = [*SESSION_ENDING, ("POST", "/user/ban_user/{user_id}")]


def _load(platform: Platform, excluded: list[tuple[str, str]]) -> schemathesis.BaseSchema:
    spec = httpx.get(f"{platform.gateway_url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec, config=schemathesis.Config.from_dict(CONFIG))
    schema.config.update(base_url=platform.gateway_url, request_timeout=30)
    for method, path in excluded:
        schema = schema.exclude(method=method, path=path)
    return schema


@pytest.fixture(scope="session")
def anonymous_schema(platform: Platform) -> schemathesis.BaseSchema:
    return _load(platform, [])


@pytest.fixture(scope="session")
def session_schema(platform: Platform) -> schemathesis.BaseSchema:
    return _load(platform, SESSION_ENDING)


@pytest.fixture(scope="session")
def admin_schema(platform: Platform) -> schemathesis.BaseSchema:
    return _load(platform, ADMIN_SESSION_ENDING)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fuzz_tokens(platform: Platform, mailbox: Mailbox) -> dict[str, str]:
    """Session tokens of accounts made for the run: an annotator, a requester and an admin. The admin
    is a new one (registered with the bootstrap admin's invite code), so that what the fuzzer does
    with it never touches the account other tests share."""
    tokens = {}
    for role in ("tag", "demand"):
        async with gateway_client(platform) as client:
            await signup(client, mailbox, role)
            tokens[role] = client.cookies[SESSION_COOKIE]
    root = await admin_client(platform)
    users = (await root.get("/user/get_all_users")).json()["data"]
    root_id = next(u["user_id"] for u in users if u["user_name"] == ADMIN_USER)
    invite_code = (await root.get(f"/user/userinfo/{root_id}")).json()["data"]["invite_code"]
    await root.aclose()
    async with gateway_client(platform) as client:
        await signup(client, mailbox, "admin", invite_code=invite_code)
        tokens["admin"] = client.cookies[SESSION_COOKIE]
    return tokens


def _headers(token: str | None) -> dict[str, str]:
    # Each request from an address of its own, as every test client (conftest.gateway_client), so
    # that the fuzzer's logins and registrations do not throttle each other by address.
    headers = {"X-Forwarded-For": random_ip()}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _call_and_validate(case: schemathesis.Case, token: str | None) -> None:
    # A fresh session per request: a cookie one answer sets never changes who the next request is.
    with requests.Session() as session:
        case.call_and_validate(session=session, headers=_headers(token), checks=CHECKS)


def _still_logged_in(platform: Platform, token: str) -> None:
    r = httpx.get(f"{platform.gateway_url}/user/get-current", headers=_headers(token), timeout=30)
    assert r.status_code == 200, f"the fuzzing session ended during the run: {r.status_code} {r.text[:200]}"


anonymous = schemathesis.pytest.from_fixture("anonymous_schema")
with_session = schemathesis.pytest.from_fixture("session_schema")
as_admin = schemathesis.pytest.from_fixture("admin_schema")


@anonymous.parametrize()
def test_fuzz_anonymously(case: schemathesis.Case) -> None:
    _call_and_validate(case, None)


@with_session.parametrize()
def test_fuzz_as_annotator(case: schemathesis.Case, fuzz_tokens: dict[str, str]) -> None:
    _call_and_validate(case, fuzz_tokens["tag"])


@with_session.parametrize()
def test_fuzz_as_requester(case: schemathesis.Case, fuzz_tokens: dict[str, str]) -> None:
    _call_and_validate(case, fuzz_tokens["demand"])


@as_admin.parametrize()
def test_fuzz_as_admin(case: schemathesis.Case, fuzz_tokens: dict[str, str]) -> None:
    _call_and_validate(case, fuzz_tokens["admin"])


@pytest.mark.parametrize("role", ["tag", "demand", "admin"])
def test_the_fuzzing_sessions_lasted(platform: Platform, fuzz_tokens: dict[str, str], role: str) -> None:
    """The runs above fuzzed as their role to the end, not anonymously after a lost session."""
    _still_logged_in(platform, fuzz_tokens[role])
