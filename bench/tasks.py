"""The tasks service at scale: a 100,000-question task distributed to 1,000 annotators.

Per run, through the gateway, timed phase by phase:

    create      POST /task/ with 100,000 files (a ~6 MB JSON body; the questions go in with COPY)
    check       the admin's POST /task/check_task
    distribute  POST /task/distribute with `smart`: every annotator's profile from auth, ranking by credit,
                accuracy and experience, 1,000 assignments inserted, the escrow hold (100,000 x 1,000 points)
    view        GET /task/{id} as the publisher: the task with its 1,000 annotators' profiles
    accept      a `toall` task of the same size: all 1,000 annotators accept at concurrency 32 (exactly
                distribute_user_num get in), then the time of one accept is reported

Baselines measured in the same run, to read the figures as ratios on whatever machine runs it:
    - the same phases for a 10,000-question task to 100 annotators (how the cost scales),
    - COPY of 100,000 question rows straight into PostgreSQL, into a table shaped like tasks.questions
      (logged, primary key, foreign key to the task) with the columns the service writes, committed
      (the floor for `create`).

Setup that is not measured goes straight to the database: the annotators (1,000, and 100 for the baseline)
are inserted into auth's
users table (registering them would hash 1,000 passwords) and given sessions the way auth's login does,
and the publisher's points are set there (100 million points cannot be bought with the demo bank).

The CPU seconds the gateway, tasks and auth spend during each create are printed too: on a loaded
machine they say more about the code than the wall time.

    BENCH_TASKS_QUESTIONS=100000  BENCH_TASKS_ANNOTATORS=1000  (the baseline is a tenth of each)
    BENCH_TASKS_PROFILE=<dir>  py-spy (from PyPI) samples the gateway, tasks and auth during each phase of the
                               large run and writes their collapsed stacks there (`<phase>-<process>.txt`)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from redis.asyncio import Redis

from bench.common import (
    BenchPlatform,
    format_table,
    generate_load,
    load_client,
    machine_info,
    process_cpu_seconds,
    running_platform,
)
from shared.redis import Keys
from shared.sessions import SessionStore

QUESTIONS = int(os.environ.get("BENCH_TASKS_QUESTIONS", "100000"))
ANNOTATORS = int(os.environ.get("BENCH_TASKS_ANNOTATORS", "1000"))
ACCEPT_CONCURRENCY = 32
TIMEOUT = 600.0
PROFILE_DIR = os.environ.get("BENCH_TASKS_PROFILE", "")
PROFILED = ("gateway", "tasks", "auth")


@dataclass
class Phases:
    label: str
    questions: int
    annotators: int
    task_id: int = 0  # the smart task (the COPY floor's rows reference it)
    create: float = 0.0
    check: float = 0.0
    distribute: float = 0.0
    view: float = 0.0
    accept_all: float = 0.0
    accept_p50_ms: float = 0.0
    accept_cpu_ms: dict[str, float] = field(default_factory=dict)
    # CPU seconds each process spent during the create: on a loaded machine its wall time is mostly
    # waiting for a core, and this is what the code itself costs.
    create_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.create + self.check + self.distribute


async def _timed(call: Callable[[], Awaitable[httpx.Response]], what: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await call()
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or (
        response.headers.get("content-type", "").startswith("application/json")
        and response.json().get("code") not in (0, None)
    ):
        raise RuntimeError(f"{what} failed: {response.status_code} {response.text[:300]}")
    return elapsed, response


@contextlib.asynccontextmanager
async def _profiled(bench: BenchPlatform, phase: str, enabled: bool) -> AsyncIterator[None]:
    """py-spy samples the processes while the block runs (only with BENCH_TASKS_PROFILE)."""
    if not (PROFILE_DIR and enabled):
        yield
        return
    Path(PROFILE_DIR).mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    samplers = [
        await asyncio.create_subprocess_exec(
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--nonblocking",
            "--output",
            str(Path(PROFILE_DIR) / f"{phase}-{name}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for name, pid in bench.pids(*PROFILED).items()
    ]
    await asyncio.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        await asyncio.gather(*(sampler.wait() for sampler in samplers))


async def _annotators(connection: asyncpg.Connection, count: int, tag: str) -> list[tuple[int, str]]:
    """Annotators straight into auth's users (an unusable password: they log in by minted session)."""
    rows = [
        (f"bench_{tag}_{i}", "!", "tag", "bench", secrets.token_hex(8).upper(), 0, 0, 0, 100, True, False, False)
        for i in range(count)
    ]
    await connection.copy_records_to_table(
        "users",
        schema_name="auth",
        records=rows,
        columns=[
            "user_name",
            "password_hash",
            "user_type",
            "area",
            "invite_code",
            "score",
            "tag_score",
            "grow_value",
            "credit_score",
            "is_checked",
            "is_banned",
            "face_bound",
        ],
    )
    found = await connection.fetch(
        "SELECT id, user_name FROM auth.users WHERE user_name LIKE $1 ORDER BY id", f"bench_{tag}_%"
    )
    return [(r["id"], r["user_name"]) for r in found]


async def _sessions(bench: BenchPlatform, users: list[tuple[int, str]], role: str) -> dict[int, str]:
    redis = Redis.from_url(bench.redis_url, decode_responses=True)
    try:
        store = SessionStore(redis, Keys(bench.namespace))
        return {user_id: await store.create(user_id, name, role) for user_id, name in users}
    finally:
        await redis.aclose()


def _body(questions: int, annotators: int, strategy: str) -> dict:
    return {
        "task_type": "text",
        "task_style": "benchmark",
        "reward_per_q": 1,
        "time_limit_per_q": 60,
        "total_time_limit": 86400,
        "distribute_user_num": annotators,
        "task_name": f"bench {secrets.token_hex(3)}",
        "accept_method": "manual",
        "strategy": strategy,
        "tag_type": ["a", "b"],
        "input_type": [],
        "cut_num": "1",
        "stdans_tag": "",
        "files": [{"filename": f"{i}.txt", "tag": str(1_000_000 + i)} for i in range(1, questions + 1)],
    }


async def _run(
    bench: BenchPlatform,
    connection: asyncpg.Connection,
    publisher: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    tokens: dict[int, str],
    questions: int,
    annotators: int,
    label: str,
) -> Phases:
    phases = Phases(label, questions, annotators)
    profiled = label == "subject"
    body = json.dumps(_body(questions, annotators, "smart")).encode()
    headers = {"content-type": "application/json"}
    pids = bench.pids(*PROFILED)
    async with _profiled(bench, "create", profiled):
        cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
        phases.create, r = await _timed(lambda: publisher.post("/task/", content=body, headers=headers), "create")
        phases.create_cpu_s = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    task_id = phases.task_id = r.json()["data"]["task_id"]
    phases.check, _ = await _timed(
        lambda: admin.post(f"/task/check_task/{task_id}", json={"result": "accept"}), "check"
    )
    async with _profiled(bench, "distribute", profiled):
        phases.distribute, r = await _timed(lambda: publisher.post(f"/task/distribute/{task_id}"), "distribute")
    placed = r.json()["data"]["distributed"]
    if placed != annotators:
        raise RuntimeError(f"distribute placed {placed} annotators, expected {annotators}")
    phases.view, r = await _timed(lambda: publisher.get(f"/task/{task_id}"), "view")
    if len(r.json()["data"]["current_tag_user_list"]) != annotators:
        raise RuntimeError("the task view does not list every annotator")

    # toall: every annotator races for the slots of a task of the same size.
    body = json.dumps(_body(questions, annotators, "toall")).encode()
    _, r = await _timed(lambda: publisher.post("/task/", content=body, headers=headers), "create toall")
    pool_id = r.json()["data"]["task_id"]
    await _timed(lambda: admin.post(f"/task/check_task/{pool_id}", json={"result": "accept"}), "check toall")
    await _timed(lambda: publisher.post(f"/task/distribute/{pool_id}"), "distribute toall")
    queue = list(tokens.values())[:annotators]

    async def accept(client: httpx.AsyncClient) -> httpx.Response:
        token = queue.pop()
        return await client.post(
            f"{bench.gateway_url}/task/accept/{pool_id}", headers={"Authorization": f"Bearer {token}"}
        )

    async with load_client(ACCEPT_CONCURRENCY, timeout=TIMEOUT) as client, _profiled(bench, "accept", profiled):
        measured = await generate_load(
            client,
            accept,
            concurrency=ACCEPT_CONCURRENCY,
            count=len(queue),
            label="accept",
            cpu_of=bench.pids("gateway", "tasks", "auth"),
        )
    if measured.errors:
        raise RuntimeError(f"accepts failed: {measured.first_error}")
    taken = await connection.fetchval("SELECT taken FROM tasks.tasks WHERE id = $1", pool_id)
    if taken != annotators:
        raise RuntimeError(f"{taken} slots taken, expected {annotators}")
    phases.accept_all, phases.accept_p50_ms = measured.elapsed, measured.p50_ms
    phases.accept_cpu_ms = {name: measured.cpu_ms_per_request(name) for name in ("gateway", "tasks", "auth")}
    return phases


async def _copy_floor(connection: asyncpg.Connection, task_id: int, questions: int) -> float:
    """COPY of the same question rows, the columns the service writes, into a table shaped like
    tasks.questions (a logged table with its defaults, constraints and primary key, the foreign key to
    an existing task), committed: what the database alone needs."""
    await connection.execute(
        "CREATE TABLE tasks.bench_questions (LIKE tasks.questions INCLUDING ALL, "
        "FOREIGN KEY (task_id) REFERENCES tasks.tasks (id) ON DELETE CASCADE)"
    )
    try:
        rows = [(task_id, i, f"{i}.txt", str(1_000_000 + i), "text") for i in range(1, questions + 1)]
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(
                "bench_questions",
                schema_name="tasks",
                records=rows,
                columns=["task_id", "q_id", "filename", "tag", "data_type"],
            )
        return time.perf_counter() - started
    finally:
        await connection.execute("DROP TABLE tasks.bench_questions")


async def main() -> None:
    print(machine_info(), flush=True)
    small_q, small_a = max(1, QUESTIONS // 10), max(1, ANNOTATORS // 10)
    print(
        f"subject: {QUESTIONS:,} questions to {ANNOTATORS:,} annotators; baseline: {small_q:,} to {small_a:,} "
        f"in the same run; strategy smart, then toall accepts at concurrency {ACCEPT_CONCURRENCY}",
        flush=True,
    )
    async with running_platform(
        ["auth", "tasks"], name="tasks", extra_env={"LABELHIVE_UPSTREAM_TIMEOUT": str(int(TIMEOUT))}
    ) as bench:
        connection = await asyncpg.connect(bench.database_url.replace("+asyncpg", ""))
        try:
            # Each run's own annotators accept its toall task (an annotator has at most 3 tasks on hand).
            small_tokens = await _sessions(bench, await _annotators(connection, small_a, secrets.token_hex(3)), "tag")
            tokens = await _sessions(bench, await _annotators(connection, ANNOTATORS, secrets.token_hex(3)), "tag")
            async with (
                httpx.AsyncClient(base_url=bench.gateway_url, timeout=TIMEOUT) as publisher,
                httpx.AsyncClient(base_url=bench.gateway_url, timeout=TIMEOUT) as admin,
            ):
                name = f"bench_pub_{secrets.token_hex(3)}"
                r = await publisher.post("/user/register-manager", json={"username": name, "password": "bench-pass-1"})
                assert r.json() == {"response": "注册成功"}, r.text
                await publisher.post("/user/login", json={"user_name": name, "password": "bench-pass-1"})
                await admin.post("/user/login", json={"user_name": bench.admin_user, "password": bench.admin_password})
                await connection.execute("UPDATE auth.users SET score = $1 WHERE user_name = $2", 10**12, name)

                baseline = await _run(bench, connection, publisher, admin, small_tokens, small_q, small_a, "baseline")
                print(f"  baseline done: {baseline.total:.2f}s", flush=True)
                subject = await _run(bench, connection, publisher, admin, tokens, QUESTIONS, ANNOTATORS, "subject")
                floor_small = await _copy_floor(connection, baseline.task_id, small_q)
                floor = await _copy_floor(connection, subject.task_id, QUESTIONS)
        finally:
            await connection.close()

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.1f}x" if b > 0 else "n/a"

    rows = []
    for name, attr in (
        ("create (POST /task/)", "create"),
        ("admin check", "check"),
        ("distribute (smart)", "distribute"),
        ("view (GET /task/{id})", "view"),
        ("create+check+distribute", "total"),
        ("toall: every annotator accepts", "accept_all"),
    ):
        b, s = getattr(baseline, attr), getattr(subject, attr)
        rows.append([name, f"{b:.3f}", f"{s:.3f}", ratio(s, b)])
    rows.append(["COPY of the questions alone", f"{floor_small:.3f}", f"{floor:.3f}", ratio(floor, floor_small)])
    print()
    print(
        format_table(
            ["phase (seconds)", f"{small_q:,} q / {small_a:,} ann.", f"{QUESTIONS:,} q / {ANNOTATORS:,} ann.", "ratio"],
            rows,
        )
    )
    print(
        f"\ncreate vs COPY alone ({QUESTIONS:,} questions): {ratio(subject.create, floor)} "
        f"(the rest is the HTTP body, validation and the gateway)"
    )
    print(
        "CPU seconds during create: "
        + "; ".join(
            f"{phases.questions:,} q: " + ", ".join(f"{k} {v:.3f}" for k, v in phases.create_cpu_s.items())
            for phases in (baseline, subject)
        )
    )
    print(
        f"accept p50 at concurrency {ACCEPT_CONCURRENCY}: baseline {baseline.accept_p50_ms:.1f} ms, "
        f"subject {subject.accept_p50_ms:.1f} ms; {ANNOTATORS / subject.accept_all:.0f} accepts/s; CPU ms per "
        f"accept: " + ", ".join(f"{k} {v:.1f}" for k, v in subject.accept_cpu_ms.items())
    )
