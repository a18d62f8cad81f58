"""Replicas behind the gateway and behind service-to-service clients: calls are balanced over a service's
addresses, a replica that goes away is taken out without a client seeing an error, and it is put back
once its /readyz answers again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio

from shared.http import ServiceClient
from shared.launcher import ROOT, UVICORN_OPTIONS, Platform, free_port
from shared.sessions import SESSION_COOKIE
from tests.conftest import Mailbox, random_ip
from tests.helpers import eventually, user_client

SECOND_AUTH = "auth-second-replica"


def _start_second_auth(platform: Platform, port: int) -> None:
    """A second auth process on the platform's database and Redis (the first is the platform's own)."""
    log = open(platform.log_dir / f"{SECOND_AUTH}.log", "ab") if platform.log_dir else None  # noqa: SIM115
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "services.auth.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *UVICORN_OPTIONS,
    ]
    platform.processes[SECOND_AUTH] = subprocess.Popen(
        command, cwd=ROOT, env=platform.env(), stdout=log, stderr=subprocess.STDOUT if log else None
    )
    if log is not None:
        log.close()  # the child holds its own copy


@dataclass
class TwoReplicas:
    gateway: str
    first: str
    second: str
    second_port: int


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_auth_replicas(platform: Platform) -> AsyncIterator[TwoReplicas]:
    """A lone gateway (like test_hardening's) whose auth service is two replicas: the platform's and a
    second process this fixture starts, stops and restarts."""
    second_port, gateway_port = free_port(), free_port()
    first, second = platform.service_url("auth"), f"http://127.0.0.1:{second_port}"
    _start_second_auth(platform, second_port)
    env = {**platform.env(), "LABELHIVE_AUTH_URL": f"{first},{second}", "LABELHIVE_SERVICES": "auth"}
    log = open(platform.log_dir / "replicas-gateway.log", "ab") if platform.log_dir else None  # noqa: SIM115
    platform.processes["replicas-gateway"] = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "gateway.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(gateway_port),
            *UVICORN_OPTIONS,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
    )
    if log is not None:
        log.close()
    gateway = f"http://127.0.0.1:{gateway_port}"
    try:
        await platform.wait_ready(f"{second}/readyz", SECOND_AUTH)
        await platform.wait_ready(f"{gateway}/healthz", "replicas-gateway")
        yield TwoReplicas(gateway, first, second, second_port)
    finally:
        platform.stop_service("replicas-gateway")
        platform.stop_service(SECOND_AUTH)


async def _served(replica: str, route: str) -> float:
    """How many requests for `route` a replica has answered (its Prometheus counter)."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{replica}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("labelhive_http_requests_total{") and f'route="{route}"' in line
    )


SECOND = 2  # the replica this module's fixture starts: second in LABELHIVE_AUTH_URL


async def _auth_replicas(gateway: httpx.AsyncClient) -> dict[str, dict]:
    response = await gateway.get("/healthz")
    assert response.status_code == 200, response.text  # one replica ready is a healthy service
    # Replicas are numbered in the order of LABELHIVE_AUTH_URL; no internal address is shown.
    assert "127.0.0.1" not in response.text, response.text
    return {r["replica"]: r for r in response.json()["data"]["services"]["auth"]["replicas"]}


async def test_a_replica_stopped_mid_run_costs_no_client_an_error_and_comes_back(
    platform: Platform, mailbox: Mailbox, two_auth_replicas: TwoReplicas
):
    replicas = two_auth_replicas
    signed_up, _ = await user_client(platform, mailbox)
    cookies = {SESSION_COOKIE: signed_up.cookies[SESSION_COOKIE]}
    await signed_up.aclose()
    async with httpx.AsyncClient(
        base_url=replicas.gateway, cookies=cookies, timeout=30, headers={"X-Forwarded-For": random_ip()}
    ) as gateway:
        before = await _auth_replicas(gateway)
        assert [r["status"] for r in before.values()] == ["ok", "ok"], before
        assert all(r["in_rotation"] for r in before.values())

        # Both replicas take their share.
        served = [await _served(url, "/user/get-current") for url in (replicas.first, replicas.second)]
        for _ in range(10):
            assert (await gateway.get("/user/get-current")).status_code == 200
        assert await _served(replicas.first, "/user/get-current") > served[0]
        assert await _served(replicas.second, "/user/get-current") > served[1]

        # Clients keep calling while the second replica stops: none of them sees an error.
        statuses: list[int] = []
        stopping = asyncio.Event()

        async def keep_calling() -> None:
            while not stopping.is_set():
                for path in ("/user/get-current", "/advertise/get_ad"):
                    statuses.append((await gateway.get(path)).status_code)

        callers = [asyncio.create_task(keep_calling()) for _ in range(4)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(platform.stop_service, SECOND_AUTH)
        await asyncio.sleep(1)
        stopping.set()
        await asyncio.gather(*callers)
        assert len(statuses) > 20 and set(statuses) == {200}, sorted(set(statuses))

        async def second_out() -> dict | None:
            second = (await _auth_replicas(gateway))[SECOND]
            return second if not second["in_rotation"] and second["status"] == "down" else None

        await eventually(second_out, timeout=10, what="the stopped replica out of the rotation")

        # Restarted, it is probed back into the rotation and takes requests again.
        _start_second_auth(platform, replicas.second_port)
        await platform.wait_ready(f"{replicas.second}/readyz", SECOND_AUTH)

        async def second_back() -> bool:
            return (await _auth_replicas(gateway))[SECOND]["in_rotation"]

        await eventually(second_back, timeout=15, what="the restarted replica back in the rotation")
        for _ in range(10):
            assert (await gateway.get("/user/get-current")).status_code == 200
        assert await _served(replicas.second, "/user/get-current") > 0


async def test_a_service_client_skips_a_replica_that_refuses_connections(platform: Platform):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = ServiceClient("auth", f"{dead},{platform.service_url('auth')}", "tasks", platform.secret)
    try:
        for method in ("GET", "POST"):  # a POST too: nothing was sent to the dead replica
            for _ in range(4):
                response = await client.request(method, "/readyz")
                # The live replica's answer: its /readyz takes GET only.
                assert response.status_code == (200 if method == "GET" else 405), response.text
        assert client.replicas.out == {dead}
    finally:
        await client.aclose()
