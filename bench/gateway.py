"""What the gateway costs: the same auth calls made through the gateway and straight to the auth
service, in one run, at concurrency 1 and 32.

Through the gateway a call carries `Authorization: Bearer <token>`; the gateway resolves the session
in Redis, signs the identity and proxies. A direct call carries the signed identity the gateway would
have added (`X-Labelhive-Identity`), so the difference is the gateway's work plus the extra hop.

    GET /user/get-current       no database: identity only
    GET /user/userinfo/{id}     one user row (and the unit of work) from PostgreSQL

Each measurement is split into BENCH_ROUNDS slices that alternate direct and gateway, so that a
change in the machine's other load (it is shared) hits both sides alike. Besides throughput and
latency, the CPU time the auth service and the gateway use per request is reported: on a busy
machine it is the steadier measure of what the gateway costs.

    BENCH_DURATION=6  seconds per measurement (BENCH_WARMUP=1 before each, BENCH_ROUNDS=3)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from bench.common import (
    BenchPlatform,
    Comparison,
    Measurement,
    RequestFn,
    generate_load,
    load_client,
    machine_info,
    merge,
    print_comparison,
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
        response = await client.post("/user/register",
                                     json={"username": name, "password": password, "user_area": "bench"})
        if response.status_code != 200 or response.json().get("response") != "注册成功":
            raise RuntimeError(f"register failed: {response.status_code} {response.text}")
        response = await client.post("/user/login", json={"user_name": name, "password": password})
        body = response.json()
        token = response.cookies.get(SESSION_COOKIE)
        if response.status_code != 200 or body.get("code") != 0 or not token:
            raise RuntimeError(f"login failed: {response.status_code} {response.text}")
    data = body["data"]
    return Expert(int(data["user_id"]), data["user_name"], data["user_type"], token)


def _check_get_current(response: httpx.Response, expert: Expert) -> None:
    body = response.json()
    if body.get("response") != "已登录" or body.get("username") != expert.user_name:
        raise RuntimeError(f"get-current did not see the expert: {response.status_code} {response.text}")


def _check_userinfo(response: httpx.Response, expert: Expert) -> None:
    body = response.json()
    if response.status_code != 200 or body.get("code") != 0 or body["data"].get("email") != "":
        # own profile (it has "email"), so the identity got through
        raise RuntimeError(f"userinfo failed: {response.status_code} {response.text}")


def _request(bench: BenchPlatform, expert: Expert, path: str, mode: str) -> RequestFn:
    if mode == "gateway":
        url = bench.gateway_url + path
        headers = {"Authorization": f"Bearer {expert.token}"}
    else:
        url = bench.service_url("auth") + path
        # Signed now: a signature is good for 5 minutes, far longer than one measurement.
        headers = {IDENTITY_HEADER: sign_identity(expert.identity(), bench.secret)}

    async def request(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(url, headers=headers)

    return request


async def _compare(
    client: httpx.AsyncClient, bench: BenchPlatform, expert: Expert, name: str, path: str,
    concurrency: int, check: Callable[[httpx.Response, Expert], None],
) -> Comparison:  # fmt: skip
    requests = {mode: _request(bench, expert, path, mode) for mode in MODES}
    for request in requests.values():
        check(await request(client), expert)  # answers as the logged-in expert, not as nobody
        if WARMUP > 0:
            await generate_load(client, request, concurrency=concurrency, duration=WARMUP)
    cpu_of = bench.pids("auth", "gateway")
    slices: dict[str, list[Measurement]] = {mode: [] for mode in MODES}
    for _ in range(ROUNDS):
        for mode in MODES:
            slices[mode].append(await generate_load(client, requests[mode], concurrency=concurrency,
                                                    duration=DURATION / ROUNDS, label=mode, cpu_of=cpu_of))
    results = {mode: merge(parts) for mode, parts in slices.items()}
    for mode in MODES:
        check(await requests[mode](client), expert)
        print(f"  {path} {results[mode].summary()}", flush=True)
    return Comparison(name, concurrency, baseline=results["direct"], subject=results["gateway"])


async def main() -> None:
    print(machine_info(), flush=True)
    print(f"each measurement: {WARMUP:g}s warm-up, then {DURATION:g}s in {ROUNDS} slices alternating direct "
          f"and gateway; concurrency {', '.join(map(str, CONCURRENCY))}", flush=True)
    async with running_platform(["auth"], name="gateway") as bench:
        expert = await register_and_login(bench.gateway_url)
        endpoints = [
            ("GET /user/get-current", "/user/get-current", _check_get_current),
            ("GET /user/userinfo/{id}", f"/user/userinfo/{expert.user_id}", _check_userinfo),
        ]
        rows: list[Comparison] = []
        async with load_client(max(CONCURRENCY)) as client:
            for name, path, check in endpoints:
                for concurrency in CONCURRENCY:
                    rows.append(await _compare(client, bench, expert, name, path, concurrency, check))
    print()
    print_comparison(rows, title="gateway vs direct (auth service only). ratio = gateway rps / direct rps; "
                                 "overhead = gateway p50 - direct p50;\ncpu ms/req = CPU time of the auth "
                                 "service + gateway processes per request (the load generator not included)")
