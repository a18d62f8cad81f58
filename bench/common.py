"""What every benchmark shares: a throw-away database and Redis namespace, a platform running the
services under test, a load generator, summaries and comparison tables.

    async with running_platform(["auth"], name="gateway") as bench:
        async with load_client(32) as client:
            result = await generate_load(client, request, concurrency=32, duration=6, label="direct")
    print_comparison([Comparison("GET /x", 32, baseline=direct, subject=gateway)])

Everything a run creates is removed when the `async with` exits, also on errors and Ctrl-C: the
services and the gateway are stopped, the `bench_<name>_<hex>` database is dropped, the Redis keys of the
run's namespace are deleted and the run's data dir goes (its logs are kept, and their tails printed,
only when the run failed).

Environment:
    BENCH_DATABASE_ADMIN_URL  a superuser URL to create/drop the database with; otherwise the
                              `postgres` database of DATABASE_URL's server, otherwise
                              postgresql://postgres@127.0.0.1:5432/postgres
    REDIS_URL                 the Redis server (default redis://127.0.0.1:6379/0)
    BENCH_KEEP_LOGS=1         keep the services' logs of a successful run too
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform as host_platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

import httpx

from shared.launcher import Platform
from tools.throwaway_platform import throwaway_backing, throwaway_platform

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


# Machine -----------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return host_platform.processor() or host_platform.machine()


def machine_info() -> str:
    """One paragraph describing where the numbers come from (print it with every benchmark)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    try:
        import uvloop  # noqa: F401

        loop = "uvloop" if "uvloop" in type(asyncio.get_running_loop()).__module__ else "asyncio"
    except (ImportError, RuntimeError):
        loop = "asyncio"
    return (
        f"machine: nproc {usable} (cpu_count {os.cpu_count()}), {_cpu_model()}, "
        f"{host_platform.system()} {host_platform.release()} {host_platform.machine()}\n"
        f"python:  {host_platform.python_implementation()} {host_platform.python_version()}, "
        f"load generator on {loop}, httpx {httpx.__version__} (HTTP/1.1 keep-alive)\n"
        f"load average at start: {load} (the client, gateway, services, PostgreSQL and Redis "
        f"share these CPUs)"
    )


# Database and Redis ------------------------------------------------------------------------------


def _plain_postgres_url(url: str) -> str:
    """asyncpg wants postgresql://; the platform also accepts postgresql+asyncpg://."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def database_admin_url() -> str:
    if url := os.environ.get("BENCH_DATABASE_ADMIN_URL"):
        return _plain_postgres_url(url)
    if url := os.environ.get("DATABASE_URL"):
        return urlunsplit(urlsplit(_plain_postgres_url(url))._replace(path="/postgres"))
    return DEFAULT_ADMIN_URL


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


# The platform ------------------------------------------------------------------------------------


@dataclass
class BenchPlatform:
    """A running platform and what a benchmark needs to talk to it, directly or via the gateway."""

    platform: Platform
    database_url: str
    redis_url: str
    namespace: str
    secret: str
    admin_user: str
    admin_password: str
    data_dir: Path
    log_dir: Path

    @property
    def gateway_url(self) -> str:
        return self.platform.gateway_url

    def service_url(self, name: str) -> str:
        return self.platform.service_url(name)

    def pids(self, *names: str) -> dict[str, int]:
        """Process ids of the named processes ("gateway", services), for `generate_load(cpu_of=...)`."""
        return {n: self.platform.processes[n].pid for n in names or self.platform.processes}


def _print_log_tails(log_dir: Path, lines: int = 25) -> None:
    for log in sorted(log_dir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            print(f"[bench] --- last lines of {log} ---", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


@contextlib.asynccontextmanager
async def running_platform(
    services: Sequence[str], *, name: str = "bench", extra_env: dict[str, str] | None = None
) -> AsyncIterator[BenchPlatform]:
    """Starts `services` and the gateway on free ports against a fresh database and a Redis
    namespace of their own (tools/throwaway_platform.py), with rate limits off; stops and removes
    everything on exit."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"labelhive-bench-{name}-"))
    data_dir, log_dir = run_dir / "data", run_dir / "logs"
    admin_user, admin_password = "bench_admin", secrets.token_urlsafe(12)
    env = {
        "LABELHIVE_RATE_LIMITS": "0",
        "LABELHIVE_ADMIN_USER": admin_user,
        "LABELHIVE_ADMIN_PASSWORD": admin_password,
        "LABELHIVE_DATA_DIR": str(data_dir),
        **(extra_env or {}),
    }
    failed = False  # an error (not Ctrl-C) keeps the logs and shows their tails
    started = time.perf_counter()
    try:
        async with (
            throwaway_backing(database_admin_url(), redis_url(), f"bench_{name}") as backing,
            throwaway_platform(backing, services=services, extra_env=env, log_dir=log_dir) as platform,
        ):
            print(
                f"[bench] platform up in {time.perf_counter() - started:.1f}s: gateway "
                f"{platform.gateway_url}, services {', '.join(services)}",
                flush=True,
            )
            yield BenchPlatform(
                platform,
                backing.database_url,
                backing.redis_url,
                backing.namespace,
                platform.secret,
                admin_user,
                admin_password,
                data_dir,
                log_dir,
            )
    except Exception:
        failed = True
        raise
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if not failed and not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(run_dir, ignore_errors=True)
        elif log_dir.exists():
            if failed:
                _print_log_tails(log_dir)
            print(f"[bench] service logs kept in {log_dir}", file=sys.stderr)


# Load generation ---------------------------------------------------------------------------------

RequestFn = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc); NaN where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def load_client(concurrency: int, timeout: float = 30.0) -> httpx.AsyncClient:
    """One client for all workers: HTTP/1.1, keep-alive, a connection per worker and host."""
    limits = httpx.Limits(
        max_connections=concurrency * 2 + 8, max_keepalive_connections=concurrency * 2 + 8, keepalive_expiry=60
    )
    return httpx.AsyncClient(http1=True, http2=False, limits=limits, timeout=timeout, follow_redirects=False)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass
class Measurement:
    """One load run: latencies (seconds, sorted) of the successful requests, and the failures."""

    label: str
    concurrency: int
    elapsed: float
    latencies: list[float] = field(repr=False)
    errors: int = 0
    first_error: str | None = None
    # CPU seconds each watched process used during the run (see `generate_load(cpu_of=...)`).
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def mean_ms(self) -> float:
        return sum(self.latencies) / len(self.latencies) * 1000 if self.latencies else math.nan

    def cpu_ms_per_request(self, *names: str) -> float:
        """CPU milliseconds per successful request, of the named watched processes (default: all)."""
        if not self.requests or not self.cpu_seconds:
            return math.nan
        return sum(v for k, v in self.cpu_seconds.items() if not names or k in names) / self.requests * 1000

    def summary(self) -> str:
        text = (
            f"{self.label} c={self.concurrency}: {self.requests} requests in {self.elapsed:.1f}s, "
            f"{self.rps:.0f} req/s, p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms"
        )
        if self.cpu_seconds and self.requests:
            text += ", cpu ms/req " + " ".join(
                f"{k} {v / self.requests * 1000:.2f}" for k, v in self.cpu_seconds.items()
            )
        if self.errors:
            text += f", {self.errors} errors (first: {self.first_error})"
        return text


async def generate_load(
    client: httpx.AsyncClient,
    request: RequestFn,
    *,
    concurrency: int,
    duration: float | None = None,
    count: int | None = None,
    label: str = "",
    cpu_of: Mapping[str, int] | None = None,
) -> Measurement:
    """`concurrency` workers call `request(client)` back to back, for `duration` seconds or until
    `count` requests were made in all. A response of status >= 400 or an HTTP error is a failure.
    `cpu_of` ({name: pid}) also records the CPU time those processes spend meanwhile: on a shared
    machine CPU per request is steadier than throughput."""
    if (duration is None) == (count is None):
        raise ValueError("give exactly one of duration and count")
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    remaining = count if count is not None else 0
    clock = time.perf_counter
    cpu_before = {name: process_cpu_seconds(pid) for name, pid in (cpu_of or {}).items()}
    started = clock()
    deadline = started + duration if duration is not None else math.inf

    async def worker() -> None:
        nonlocal remaining, errors, first_error
        while True:
            if count is not None:
                if remaining <= 0:
                    return
                remaining -= 1
            elif clock() >= deadline:
                return
            error = None
            before = clock()
            try:
                response = await request(client)
                if response.status_code >= 400:
                    error = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                error = repr(exc)
            after = clock()
            if error is None:
                latencies.append(after - before)
            else:
                errors += 1
                first_error = first_error or error

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = clock() - started
    cpu = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in (cpu_of or {}).items()}
    latencies.sort()
    return Measurement(label, concurrency, elapsed, latencies, errors, first_error, cpu)


def merge(parts: Sequence[Measurement]) -> Measurement:
    """One measurement out of several slices of the same load (e.g. interleaved rounds)."""
    first = parts[0]
    cpu: dict[str, float] = {}
    for part in parts:
        for name, seconds in part.cpu_seconds.items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    return Measurement(
        first.label,
        first.concurrency,
        sum(p.elapsed for p in parts),
        sorted(x for p in parts for x in p.latencies),
        sum(p.errors for p in parts),
        next((p.first_error for p in parts if p.first_error), None),
        cpu,
    )


# wrk: HTTP load from C, so that the client does not eat the CPU it measures -----------------------


def ensure_wrk() -> str | None:
    """The `wrk` binary (Debian's package), installed when absent and apt-get can; None otherwise."""
    if path := shutil.which("wrk"):
        return path
    print("[bench] wrk not found: apt-get install -y wrk", flush=True)
    with contextlib.suppress(OSError):
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            if subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
                break
    return shutil.which("wrk")


def announce_wrk_bench(
    warmup: float, duration: float, rounds: int, alternating: str, concurrency: tuple[int, ...]
) -> str:
    """Prints the machine and how the load is made; the wrk binary, which a wrk bench cannot do without."""
    print(machine_info(), flush=True)
    wrk = ensure_wrk()
    if wrk is None:
        raise RuntimeError("wrk is needed (Debian package wrk) and could not be installed")
    print(
        f"load: wrk ({wrk}), keep-alive; each measurement: {warmup:g}s warm-up per side, then {duration:g}s "
        f"per side in {rounds} slices alternating {alternating}; concurrency {', '.join(map(str, concurrency))}",
        flush=True,
    )
    return wrk


async def alternating_wrk(
    wrk: str,
    targets: Mapping[str, tuple[str, dict[str, str]]],
    *,
    concurrency: int,
    warmup: float,
    duration: float,
    rounds: int,
    cpu_of: Mapping[str, int],
) -> dict[str, list[WrkResult]]:
    """Each side (name -> url, headers) warmed up, then `rounds` slices of duration/rounds per side with the
    sides alternating, so that the machine's other load falls on every side alike."""
    for url, headers in targets.values():
        if warmup > 0:
            await run_wrk(wrk, url, concurrency=concurrency, duration=warmup, headers=headers)
    results: dict[str, list[WrkResult]] = {side: [] for side in targets}
    for _ in range(rounds):
        for side, (url, headers) in targets.items():
            results[side].append(
                await run_wrk(
                    wrk, url, concurrency=concurrency, duration=duration / rounds, headers=headers, cpu_of=cpu_of
                )
            )
    return results


@dataclass
class AlternatingRow:
    """One measurement of alternating_wrk: medians per side, and medians of the slices' pairs."""

    endpoint: str
    concurrency: int
    rounds: dict[str, list[WrkResult]]

    def median(self, side: str, value: Callable[[WrkResult], float]) -> float:
        return statistics.median(value(r) for r in self.rounds[side])

    def paired(self, first: str, second: str, value: Callable[[WrkResult, WrkResult], float]) -> float:
        return statistics.median(value(a, b) for a, b in zip(self.rounds[first], self.rounds[second], strict=True))

    def errors(self) -> int:
        return sum(r.errors for results in self.rounds.values() for r in results)


@dataclass
class WrkResult:
    """One wrk run: throughput, median latency, failures and the CPU the watched processes used."""

    requests: int
    elapsed: float
    p50_ms: float
    errors: int
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else math.nan

    def cpu_ms_per_request(self, name: str) -> float:
        return self.cpu_seconds[name] / self.requests * 1000 if self.requests else math.nan


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_number(pattern: str, text: str, default: float = 0.0) -> float:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else default


async def run_wrk(
    wrk: str, url: str, *, concurrency: int, duration: float, headers: Mapping[str, str] | None = None,
    cpu_of: Mapping[str, int] | None = None,
) -> WrkResult:  # fmt: skip
    """`concurrency` keep-alive connections sending GET `url` back to back for `duration` seconds."""
    command = [
        wrk,
        "-t",
        str(min(2, concurrency)),
        "-c",
        str(concurrency),
        "-d",
        f"{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "30s",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    cpu_before = {name: process_cpu_seconds(pid) for name, pid in (cpu_of or {}).items()}
    process = await asyncio.create_subprocess_exec(
        *command, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out = (await process.communicate())[0].decode(errors="replace")
    cpu = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in (cpu_of or {}).items()}
    summary = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    if process.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {out[-500:]}")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors = int(_wrk_number(r"Non-2xx or 3xx responses: (\d+)", out)) + socket_errors
    elapsed = float(summary.group(2)) * _WRK_UNITS[summary.group(3)] / 1000
    return WrkResult(
        int(summary.group(1)), elapsed, float(p50.group(1)) * _WRK_UNITS[p50.group(2)] if p50 else math.nan, errors, cpu
    )


# Reporting ---------------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table; the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


@dataclass
class Comparison:
    """The same work measured two ways: `subject` (e.g. through the gateway) against `baseline`."""

    name: str
    concurrency: int
    baseline: Measurement
    subject: Measurement


def print_comparison(
    rows: Sequence[Comparison],
    *,
    baseline_label: str = "direct",
    subject_label: str = "gateway",
    title: str | None = None,
    file: TextIO | None = None,
) -> None:
    """Throughput, its ratio (subject/baseline), p50/p99 of both, the latency the subject adds at the
    median (subject p50 - baseline p50) and, where CPU was watched, the CPU milliseconds per request
    of all watched processes for both."""
    out = file or sys.stdout
    b, s = baseline_label, subject_label
    with_cpu = any(r.baseline.cpu_seconds or r.subject.cpu_seconds for r in rows)
    headers = [
        "endpoint",
        "conc",
        f"{b} rps",
        f"{s} rps",
        f"ratio {s}/{b}",
        f"{b} p50 ms",
        f"{b} p99 ms",
        f"{s} p50 ms",
        f"{s} p99 ms",
        "overhead p50 ms",
    ]
    if with_cpu:
        headers += [f"{b} cpu ms/req", f"{s} cpu ms/req"]
    headers.append("errors")
    table = []
    for row in rows:
        base, subj = row.baseline, row.subject
        ratio = subj.rps / base.rps if base.rps else math.nan
        cells: list[object] = [
            row.name,
            row.concurrency,
            f"{base.rps:.0f}",
            f"{subj.rps:.0f}",
            f"{ratio:.2f}",
            f"{base.p50_ms:.2f}",
            f"{base.p99_ms:.2f}",
            f"{subj.p50_ms:.2f}",
            f"{subj.p99_ms:.2f}",
            f"{subj.p50_ms - base.p50_ms:+.2f}",
        ]
        if with_cpu:
            cells += [f"{base.cpu_ms_per_request():.2f}", f"{subj.cpu_ms_per_request():.2f}"]
        cells.append(base.errors + subj.errors)
        table.append(cells)
    if title:
        print(title, file=out)
    print(format_table(headers, table), file=out, flush=True)


def logged_message(bench: BenchPlatform, service: str, prefix: str) -> str:
    """The first message a service logged that starts with `prefix` (e.g. which providers its model
    runs on), or a note that there was none."""
    log = bench.log_dir / f"{service}.log"
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        try:
            message = json.loads(line).get("message", "")
        except (ValueError, AttributeError):
            continue
        if isinstance(message, str) and message.startswith(prefix):
            return message
    return f"unknown (no '{prefix}' line in the {service} log)"
