"""A replica that gets SIGTERM drains before it goes (shared/service_app.py Drain): for
LABELHIVE_DRAIN_SECONDS its /readyz answers 503 and every answer carries `Connection: close`, while it
goes on serving; the gateway and the peer clients take it out of their rotation on seeing either. So a
rolling restart under a steady stream of requests, non-idempotent POSTs among them, costs no client an
error: without the drain (LABELHIVE_DRAIN_SECONDS=0) a POST sent on a keep-alive connection in the loop
turn the stopping replica closed it got no answer, and a 503."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import FrameType

import httpx
import pytest
import pytest_asyncio

from shared.http import ServiceClient
from shared.launcher import Platform
from shared.service_app import DEFAULT_DRAIN_SECONDS, Drain, drain_seconds
from tests.conftest import Mailbox, Servers, gateway_client, platform_env, platform_log_dir
from tests.helpers import admin_client, eventually
from tools.throwaway_platform import throwaway_backing, throwaway_platform

SECOND = "auth-2"
# Enough callers that, on the 2-core machine, the gateway always has requests on its way to the stopping
# replica: with the drain off, 3 rounds (6 stops) lost 2-3 POSTs to a 503 in each of two runs.
CALLERS, ROUNDS = 24, 3


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def auth_replicas(servers: Servers, mailbox: Mailbox) -> AsyncIterator[Platform]:
    """A platform of its own with two auth replicas behind its gateway (and no other service)."""
    async with throwaway_backing(servers.admin_url, servers.redis_url, "labelhive_drain") as backing:
        env = platform_env(backing, mailbox)
        async with throwaway_platform(
            backing, services=("auth",), extra_env=env, log_dir=platform_log_dir(backing), replicas=2
        ) as running:
            yield running


async def _served(port: int, route: str) -> float:
    """How many requests for `route` one replica has answered (its Prometheus counter)."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("labelhive_http_requests_total{") and f'route="{route}"' in line
    )


async def _restart(platform: Platform, process: str) -> None:
    """Stops one replica as a rolling restart does (SIGTERM, then waiting for it to exit) and starts it again."""
    port = dict(platform.replicas("auth"))[process]
    await asyncio.to_thread(platform.stop_service, process)
    platform.start_replica(process)
    await platform.wait_ready(f"http://127.0.0.1:{port}/readyz", process)


async def test_a_replica_drains_after_sigterm_and_the_gateway_takes_it_out(auth_replicas: Platform):
    platform = auth_replicas
    port = dict(platform.replicas("auth"))[SECOND]
    replica = f"http://127.0.0.1:{port}"
    gateway = await admin_client(platform)
    async with httpx.AsyncClient(base_url=replica, timeout=5) as direct:
        healthy = await direct.get("/healthz")
        assert healthy.status_code == 200 and "connection" not in healthy.headers
        for _ in range(4):  # both replicas take their share
            assert (await gateway.get("/user/get-current")).status_code == 200
        assert await _served(port, "/user/get-current") > 0

        stopped_at = time.monotonic()
        platform.processes[SECOND].send_signal(signal.SIGTERM)

        async def draining() -> httpx.Response | None:
            response = await direct.get("/readyz")
            return response if response.status_code == 503 else None

        ready = await eventually(draining, timeout=2, interval=0.05, what="/readyz 503 after SIGTERM")
        assert ready.json()["message"] == "draining"
        assert ready.headers["connection"] == "close"
        # Still serving, each answer asking the caller to close its connection.
        answer = await direct.get("/healthz")
        assert (answer.status_code, answer.headers["connection"]) == (200, "close")

        # The gateway's first answer from it says `Connection: close`: it is sent nothing more.
        before = await _served(port, "/user/get-current")
        for _ in range(10):
            assert (await gateway.get("/user/get-current")).status_code == 200
        assert await _served(port, "/user/get-current") - before <= 1
        assert platform.processes[SECOND].poll() is None, "stopped before its drain ended"

    await asyncio.to_thread(platform.processes[SECOND].wait, platform.drain_seconds + 10)
    assert time.monotonic() - stopped_at >= platform.drain_seconds
    await gateway.aclose()
    platform.processes.pop(SECOND)
    platform.start_replica(SECOND)
    await platform.wait_ready(f"{replica}/readyz", SECOND)


async def test_a_rolling_restart_under_a_steady_stream_costs_no_request(auth_replicas: Platform):
    platform = auth_replicas
    admin = await admin_client(platform)
    anonymous = gateway_client(platform)
    calls = [
        lambda: admin.get("/user/get-current"),
        lambda: admin.post("/user/reset_invite_code"),  # a write without an Idempotency-Key: never sent twice
        lambda: anonymous.get("/advertise/get_ad"),
    ]
    answers: Counter[str] = Counter()
    failures: list[str] = []
    stop = asyncio.Event()

    async def keep_calling(offset: int) -> None:
        turn = offset
        while not stop.is_set():
            call = calls[turn % len(calls)]
            turn += 1
            try:
                response = await call()
            except httpx.TransportError as exc:  # the gateway itself never fails: this is a test bug
                failures.append(f"no answer from the gateway: {exc!r}")
                continue
            request = response.request
            answers[f"{request.method} {request.url.path}"] += 1
            if response.status_code != 200 or response.json().get("code", 0) != 0:  # 001's has no code
                failures.append(f"{request.method} {request.url.path}: {response.status_code} {response.text[:200]}")

    callers = [asyncio.create_task(keep_calling(i)) for i in range(CALLERS)]
    try:
        await asyncio.sleep(0.5)
        for process, _ in platform.replicas("auth") * ROUNDS:  # one after the other, as a Deployment rolls
            await _restart(platform, process)
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*callers)
        await admin.aclose()
        await anonymous.aclose()

    assert failures == [], failures[:10]
    assert answers["POST /user/reset_invite_code"] > 20, answers
    print(f"answers through {2 * ROUNDS} restarts (drain {platform.drain_seconds:g}s): {dict(answers)}")


def test_drain_seconds_is_a_number_of_seconds():
    assert drain_seconds({}) == DEFAULT_DRAIN_SECONDS
    assert drain_seconds({"LABELHIVE_DRAIN_SECONDS": "0"}) == 0
    assert drain_seconds({"LABELHIVE_DRAIN_SECONDS": " 2.5 "}) == 2.5
    for wrong in ("-1", "soon", "nan", "inf"):
        with pytest.raises(ValueError, match="LABELHIVE_DRAIN_SECONDS"):
            drain_seconds({"LABELHIVE_DRAIN_SECONDS": wrong})


@pytest.fixture
def server_handler() -> Iterator[list[float]]:
    """Stands in for the server's SIGTERM handler (uvicorn's shutdown): records when it is called."""
    calls: list[float] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append(time.monotonic())

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGTERM, previous)


async def test_sigterm_drains_then_hands_over_to_the_server(server_handler: list[float]):
    servers = signal.getsignal(signal.SIGTERM)
    drain = Drain(0.3)
    with drain.on_sigterm():
        assert not drain.draining
        sent = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        await eventually(_met(lambda: drain.draining), timeout=1, interval=0.01, what="draining")
        assert server_handler == []  # the server does not hear of it yet
        await eventually(_met(lambda: bool(server_handler)), timeout=2, interval=0.01, what="handed over")
        assert server_handler[0] - sent >= 0.3
    assert signal.getsignal(signal.SIGTERM) is servers  # the server's handler is back
    assert len(server_handler) == 1


async def test_a_second_sigterm_stops_at_once(server_handler: list[float]):
    drain = Drain(30)
    with drain.on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        await eventually(_met(lambda: drain.draining), timeout=1, interval=0.01, what="draining")
        os.kill(os.getpid(), signal.SIGTERM)
        await eventually(_met(lambda: bool(server_handler)), timeout=1, interval=0.01, what="handed over")
    assert len(server_handler) == 1


def _met(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """`condition` as the check `eventually` awaits."""

    async def check() -> bool:
        return condition()

    return check


async def test_a_service_client_takes_out_a_replica_that_says_it_is_stopping():
    """A peer's answer with `Connection: close` (a replica draining) is used, and that replica gets no more."""
    asked: Counter[str] = Counter()

    def answer(request: httpx.Request) -> httpx.Response:
        asked[request.url.host] += 1
        stopping = request.url.host == "stopping"
        return httpx.Response(200, json={"code": 0}, headers={"Connection": "close"} if stopping else {})

    client = ServiceClient(
        "auth", "http://stopping,http://serving", "tasks", "secret", transport=httpx.MockTransport(answer)
    )
    try:
        for _ in range(6):
            assert (await client.request("POST", "/internal/escrow/hold")).status_code == 200
        assert client.replicas.out == {"http://stopping"}
        assert asked == {"stopping": 1, "serving": 5}
    finally:
        await client.aclose()
