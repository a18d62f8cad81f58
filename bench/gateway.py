"""What the gateway costs: the same auth calls made through the gateway and straight to the auth
service, in one run, at concurrency 1 and 32, with load from `wrk` (C: the client does not eat the CPU
it measures; installed with apt-get when absent).

Through the gateway a signed-in call carries `Authorization: Bearer <token>`; the gateway resolves the
session (Redis, then its few-second cache), signs the identity and proxies. A direct call carries the
signed identity the gateway would have added (`X-Labelhive-Identity`), so the difference is the
gateway's work plus the extra hop.

    GET /advertise/get_ad        anonymous: a public route, no session (one random-ad query)
    GET /user/get-current        no database: identity only
    GET /user/userinfo/{id}      one user row (and the unit of work) from PostgreSQL

Each measurement is split into BENCH_ROUNDS slices that alternate direct and gateway, so that a
change in the machine's other load (it is shared) hits both sides alike; the table shows medians over
the rounds (ratio and overhead: medians of each round's pair). Besides throughput and latency, the CPU
time the auth service and the gateway use per request is reported: on a busy machine it is the
steadier measure of what each costs.

    BENCH_DURATION=6  seconds per measurement and side (BENCH_WARMUP=1 before each, BENCH_ROUNDS=3)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

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
from shared.identity import IDENTITY_HEADER, Identity, sign_identity
from shared.sessions import SESSION_COOKIE, digest

DURATION = float(os.environ.get("BENCH_DURATION", "6"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
MODES = ("direct", "gateway")
CONCURRENCY = (1, 32)


@dataclass(frozen=True)
class Expert:
    user_id: int
    user_name: str
    role: str
    token: str = field(repr=False)

    def identity(self) -> Identity:
        """Exactly what the gateway resolves from the token (and signs per request)."""
        return Identity(self.user_id, self.user_name, self.role, via="session", credential=digest(self.token))


async def register_and_login(gateway_url: str) -> Expert:
    """A new expert (001's register body), logged in once through the gateway (003's login)."""
    name, password = f"bench_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    # A client of its own, so that the session cookie never rides along on the measured requests.
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        response = await client.post(
            "/user/register", json={"username": name, "password": password, "user_area": "bench"}
        )
        if response.status_code != 200 or response.json().get("response") != "注册成功":
            raise RuntimeError(f"register failed: {response.status_code} {response.text}")
        response = await client.post("/user/login", json={"user_name": name, "password": password})
        body = response.json()
        token = response.cookies.get(SESSION_COOKIE)
        if response.status_code != 200 or body.get("code") != 0 or not token:
            raise RuntimeError(f"login failed: {response.status_code} {response.text}")
    data = body["data"]
    return Expert(int(data["user_id"]), data["user_name"], data["user_type"], token)


def _check_get_ad(response: httpx.Response, expert: Expert) -> None:
    if response.status_code != 200 or response.json().get("code") != 0:
        raise RuntimeError(f"get_ad failed: {response.status_code} {response.text}")


def _check_get_current(response: httpx.Response, expert: Expert) -> None:
    body = response.json()
    if body.get("response") != "已登录" or body.get("username") != expert.user_name:
        raise RuntimeError(f"get-current did not see the expert: {response.status_code} {response.text}")


def _check_userinfo(response: httpx.Response, expert: Expert) -> None:
    body = response.json()
    if response.status_code != 200 or body.get("code") != 0 or body["data"].get("email") != "":
        # own profile (it has "email"), so the identity got through
        raise RuntimeError(f"userinfo failed: {response.status_code} {response.text}")


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    signed_in: bool
    check: Callable[[httpx.Response, Expert], None]


def _target(bench: BenchPlatform, expert: Expert, endpoint: Endpoint, mode: str) -> tuple[str, dict[str, str]]:
    if mode == "gateway":
        headers = {"Authorization": f"Bearer {expert.token}"} if endpoint.signed_in else {}
        return bench.gateway_url + endpoint.path, headers
    # Signed now: a signature is good for 5 minutes, far longer than one measurement.
    headers = {IDENTITY_HEADER: sign_identity(expert.identity(), bench.secret)} if endpoint.signed_in else {}
    return bench.service_url("auth") + endpoint.path, headers


class Row(AlternatingRow):
    def cells(self) -> list[object]:
        def rps(r: WrkResult) -> float:
            return r.rps

        def p50(r: WrkResult) -> float:
            return r.p50_ms

        def cpu(name: str) -> Callable[[WrkResult], float]:
            return lambda r: r.cpu_ms_per_request(name)

        return [
            self.endpoint,
            self.concurrency,
            f"{self.median('direct', rps):.0f}",
            f"{self.median('gateway', rps):.0f}",
            f"{self.paired('direct', 'gateway', lambda d, g: g.rps / d.rps):.2f}",
            f"{self.median('direct', p50):.2f}",
            f"{self.median('gateway', p50):.2f}",
            f"{self.paired('direct', 'gateway', lambda d, g: g.p50_ms - d.p50_ms):+.2f}",
            f"{self.median('direct', cpu('auth')):.3f}",
            f"{self.median('gateway', cpu('auth')):.3f}",
            f"{self.median('gateway', cpu('gateway')):.3f}",
            self.errors(),
        ]


async def _compare(wrk: str, bench: BenchPlatform, expert: Expert, endpoint: Endpoint, concurrency: int) -> Row:
    targets = {mode: _target(bench, expert, endpoint, mode) for mode in MODES}
    async with httpx.AsyncClient(timeout=30) as client:
        for url, headers in targets.values():  # answers as the logged-in expert, not as nobody
            endpoint.check(await client.get(url, headers=headers), expert)
    cpu_of = bench.pids("auth", "gateway")
    rounds = await alternating_wrk(
        wrk, targets, concurrency=concurrency, warmup=WARMUP, duration=DURATION, rounds=ROUNDS, cpu_of=cpu_of
    )
    async with httpx.AsyncClient(timeout=30) as client:
        for url, headers in targets.values():
            endpoint.check(await client.get(url, headers=headers), expert)
    row = Row(endpoint.name, concurrency, rounds)
    print("  " + "  ".join(str(c) for c in row.cells()), flush=True)
    return row


async def main() -> None:
    wrk = announce_wrk_bench(WARMUP, DURATION, ROUNDS, "direct and gateway", CONCURRENCY)
    async with running_platform(["auth"], name="gateway") as bench:
        expert = await register_and_login(bench.gateway_url)
        endpoints = [
            Endpoint("GET /advertise/get_ad (anonymous)", "/advertise/get_ad", False, _check_get_ad),
            Endpoint("GET /user/get-current", "/user/get-current", True, _check_get_current),
            Endpoint("GET /user/userinfo/{id}", f"/user/userinfo/{expert.user_id}", True, _check_userinfo),
        ]
        rows = [
            await _compare(wrk, bench, expert, endpoint, concurrency)
            for endpoint in endpoints
            for concurrency in CONCURRENCY
        ]
    print()
    print(
        "gateway vs direct (auth service only), medians over the rounds. ratio = gateway rps / direct rps;\n"
        "overhead = gateway p50 - direct p50; cpu ms/req = CPU time per request of the auth service (called\n"
        "directly, and through the gateway) and of the gateway; errors = non-2xx answers and socket errors"
    )
    print(
        format_table(
            [
                "endpoint",
                "conc",
                "direct rps",
                "gateway rps",
                "ratio gateway/direct",
                "direct p50 ms",
                "gateway p50 ms",
                "overhead p50 ms",
                "auth cpu ms/req (direct)",
                "auth cpu ms/req (via gateway)",
                "gateway cpu ms/req",
                "errors",
            ],
            [row.cells() for row in rows],
        ),
        flush=True,
    )
