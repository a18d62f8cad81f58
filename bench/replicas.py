"""The gateway's throughput with one and with two replicas of the auth service (issue 13), in one run.

One platform (the auth service, its database and Redis) runs two gateways: the platform's own, which
knows the first auth replica only, and a second one started here, which balances over that replica and
a second one also started here. Both are measured against the same routes with `wrk`, in slices that
alternate one and two, so that a change in the shared machine's other load hits both alike; the table
shows medians over the rounds, the ratio two/one is the median of each round's pair.

    GET /user/userinfo/{id}      003, signed in (Bearer): one user row from PostgreSQL
    GET /advertise/get_ad        anonymous: one random-ad query

Besides throughput and latency, the CPU time per request of the gateway and of the auth replicas
together is reported. Two replicas can only help where auth is what a request waits for and there is
a free core to run the second one on: on the 2-core development machine the gateway, wrk, PostgreSQL
and Redis already share the cores with auth.

    BENCH_DURATION=6  seconds per measurement and side (BENCH_WARMUP=1 before each, BENCH_ROUNDS=3)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.common import (
    AlternatingRow,
    BenchPlatform,
    WrkResult,
    alternating_wrk,
    announce_wrk_bench,
    format_table,
    running_platform,
)
from bench.gateway import Expert, register_and_login
from shared.launcher import free_port

DURATION = float(os.environ.get("BENCH_DURATION", "6"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
CONCURRENCY = (32,)
MODES = ("one", "two")
SECOND_GATEWAY = "gateway-2"


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    signed_in: bool


class Row(AlternatingRow):
    def cells(self) -> list[object]:
        def rps(r: WrkResult) -> float:
            return r.rps

        def p50(r: WrkResult) -> float:
            return r.p50_ms

        def cpu(*names: str) -> Callable[[WrkResult], float]:
            return lambda r: sum(r.cpu_seconds[n] for n in names) / r.requests * 1000 if r.requests else float("nan")

        return [
            self.endpoint,
            self.concurrency,
            f"{self.median('one', rps):.0f}",
            f"{self.median('two', rps):.0f}",
            f"{self.paired('one', 'two', lambda one, two: two.rps / one.rps):.2f}",
            f"{self.median('one', p50):.2f}",
            f"{self.median('two', p50):.2f}",
            f"{self.median('one', cpu('gateway')):.3f}",
            f"{self.median('two', cpu(SECOND_GATEWAY)):.3f}",
            f"{self.median('one', cpu('auth', 'auth-2')):.3f}",
            f"{self.median('two', cpu('auth', 'auth-2')):.3f}",
            f"{self.median('two', lambda r: r.cpu_seconds['auth-2'] / (r.cpu_seconds['auth'] + r.cpu_seconds['auth-2'])):.2f}",
            self.errors(),
        ]


HEADERS = [
    "endpoint",
    "conc",
    "one rps",
    "two rps",
    "ratio two/one",
    "one p50 ms",
    "two p50 ms",
    "gateway cpu ms/req (one)",
    "gateway cpu ms/req (two)",
    "auth cpu ms/req (one)",
    "auth cpu ms/req (two, both replicas)",
    "second's share",
    "errors",
]


async def _second_replica_and_gateway(bench: BenchPlatform) -> str:
    """Starts a second auth replica and a gateway that balances over both; returns that gateway's URL."""
    platform = bench.platform
    platform.replica_ports["auth"] = [free_port()]
    platform.start_replica("auth-2")
    await platform.wait_ready(f"http://127.0.0.1:{platform.replica_ports['auth'][0]}/readyz", "auth-2")
    port = free_port()
    platform.start_gateway(SECOND_GATEWAY, port)
    url = f"http://127.0.0.1:{port}"
    await platform.wait_ready(f"{url}/healthz", SECOND_GATEWAY)
    async with httpx.AsyncClient(timeout=10) as client:
        replicas = (await client.get(f"{url}/healthz")).json()["data"]["services"]["auth"]["replicas"]
    if [r["in_rotation"] for r in replicas] != [True, True]:
        raise RuntimeError(f"the second gateway does not balance over two auth replicas: {replicas}")
    return url


async def _check(url: str, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(url, headers=headers)
    if response.status_code != 200 or response.json().get("code") != 0:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")


async def _compare(wrk: str, bench: BenchPlatform, gateways: dict[str, str], expert: Expert, endpoint: Endpoint,
                   concurrency: int) -> Row:  # fmt: skip
    headers = {"Authorization": f"Bearer {expert.token}"} if endpoint.signed_in else {}
    targets = {mode: (gateways[mode] + endpoint.path, headers) for mode in MODES}
    for url, _ in targets.values():
        await _check(url, headers)
    cpu_of = bench.pids("gateway", SECOND_GATEWAY, "auth", "auth-2")
    rounds = await alternating_wrk(
        wrk, targets, concurrency=concurrency, warmup=WARMUP, duration=DURATION, rounds=ROUNDS, cpu_of=cpu_of
    )
    row = Row(endpoint.name, concurrency, rounds)
    print("  " + "  ".join(str(c) for c in row.cells()), flush=True)
    return row


async def main() -> None:
    wrk = announce_wrk_bench(WARMUP, DURATION, ROUNDS, "one and two auth replicas", CONCURRENCY)
    async with running_platform(["auth"], name="replicas") as bench:
        expert = await register_and_login(bench.gateway_url)
        gateways = {"one": bench.gateway_url, "two": await _second_replica_and_gateway(bench)}
        endpoints = [
            Endpoint("GET /user/userinfo/{id}", f"/user/userinfo/{expert.user_id}", True),
            Endpoint("GET /advertise/get_ad (anonymous)", "/advertise/get_ad", False),
        ]
        rows = [
            await _compare(wrk, bench, gateways, expert, endpoint, concurrency)
            for endpoint in endpoints
            for concurrency in CONCURRENCY
        ]
    print()
    print(
        "the gateway with one auth replica vs with two, medians over the rounds. ratio = two rps / one rps\n"
        "(median of the rounds' pairs); cpu ms/req = CPU time per request of the gateway measured and of\n"
        "the auth replicas together (with one replica the second is idle); second's share = the second\n"
        "replica's part of that CPU with two (about half when the gateway balances); errors = non-2xx\n"
        "answers and socket errors"
    )
    print(format_table(HEADERS, [row.cells() for row in rows]), flush=True)
