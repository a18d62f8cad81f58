"""Static checks of the production deployment: docker-compose.yml, its CPU overlay, the Dockerfile,
.dockerignore, .env.example and the helpers under docker/.

No Docker engine is needed. Where the `docker compose` plugin is installed, its own validation runs as
well (`docker compose config`); elsewhere that one test is skipped.
"""

from __future__ import annotations

import http.server
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
CPU_OVERLAY = ROOT / "docker" / "compose.cpu.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

PLATFORM_SERVICES = ("auth", "dataset", "tasks", "face", "detect", "stats", "console")
# The services that own a schema (the console serves pages and owns none).
DATABASE_SERVICES = tuple(name for name in PLATFORM_SERVICES if name != "console")
GPU_SERVICES = ("face", "detect")
FILE_SERVICES = ("dataset", "face", "detect")
# Variable names whose values are secrets: only ever references to the operator's environment.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")
UVICORN_COMMAND = ["python", "-m", "uvicorn", None, "--factory", "--host", "0.0.0.0", "--port", "8000"]


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader that also reads Compose's `!reset` and `!override` tags (used by the CPU overlay)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: {"__compose_tag__": "reset"})
_ComposeLoader.add_constructor(
    "!override", lambda loader, node: {"__compose_tag__": "override", "value": loader.construct_object(node)}
)


def _load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader subclass


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: ("" if value is None else str(value)) for key, value in env.items()}


def _resolve(value: str, env: dict[str, str] | None = None) -> str:
    """Interpolate like Compose would with ``env`` as the operator's environment (defaults apply)."""
    env = env or {}

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"]
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if op in (":?", "?"):
            if not current:
                raise LookupError(f"{name}: {arg}")
            return current
        return current or ""

    return INTERPOLATION.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return instructions


# --- docker-compose.yml ----------------------------------------------------------------------------


def test_every_platform_service_and_the_gateway_are_defined(services: dict[str, Any]) -> None:
    for name in (*PLATFORM_SERVICES, "gateway", "postgres", "redis"):
        assert name in services, f"docker-compose.yml defines no service {name!r}"


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for name in PLATFORM_SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] == "python", f"{name}: the slim image has no curl; use python"
        assert test[-1].endswith(":8000/readyz"), f"{name} must be checked on /readyz: {test}"
    gateway_test = services["gateway"]["healthcheck"]["test"]
    assert gateway_test[:2] == ["CMD", "python"]
    assert any(arg.endswith(":8000/healthz") for arg in gateway_test), gateway_test
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_the_healthchecks_script_is_in_the_image_and_the_context() -> None:
    assert (ROOT / "docker" / "healthcheck.py").is_file()
    copies = [args for keyword, args in _dockerfile_instructions() if keyword == "COPY"]
    assert any(args.split()[0] in ("docker/", "docker", ".") for args in copies), copies


def test_databases_are_pinned_persistent_and_private(services: dict[str, Any]) -> None:
    postgres, redis = services["postgres"], services["redis"]
    major = re.match(r"postgres:(\d+)", postgres["image"])
    assert major and int(major[1]) >= 16, postgres["image"]
    assert re.match(r"redis:7(\b|[.-])", redis["image"]), redis["image"]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    for name, service in services.items():
        if name != "gateway":
            assert not service.get("ports"), f"{name} must not publish a port: only the gateway does"


def test_the_gateway_publishes_the_port_and_depends_on_all_services(services: dict[str, Any]) -> None:
    gateway = services["gateway"]
    ports = [str(port) for port in gateway.get("ports", [])]
    assert ports == ["${LABELHIVE_PORT:-8000}:8000"], ports
    assert _resolve(ports[0]) == "8000:8000"
    assert _resolve(ports[0], {"LABELHIVE_PORT": "9090"}) == "9090:8000"
    depends = gateway["depends_on"]
    assert isinstance(depends, dict), "depends_on must use the long form, to wait for healthy services"
    for name in PLATFORM_SERVICES:
        assert depends.get(name, {}).get("condition") == "service_healthy", f"gateway must wait for {name}"
    env = _environment(gateway)
    assert env["LABELHIVE_SERVICES"].split(",") == list(PLATFORM_SERVICES)
    assert gateway["command"][3] == "gateway.app:create_app"


def test_services_wait_for_healthy_databases_and_know_their_peers(services: dict[str, Any]) -> None:
    for name in PLATFORM_SERVICES:
        service = services[name]
        depends = service["depends_on"]
        databases = ("postgres", "redis") if name in DATABASE_SERVICES else ("redis",)
        for database in databases:
            assert depends[database]["condition"] == "service_healthy", f"{name} -> {database}"
        env = _environment(service)
        if name not in DATABASE_SERVICES:
            assert "DATABASE_URL" not in env, f"{name} owns no schema and gets no database credentials"
            continue
        for key in ("DATABASE_URL", "REDIS_URL", "LABELHIVE_INTERNAL_SECRET", "LABELHIVE_DATA_DIR"):
            assert env.get(key), f"{name} lacks {key}"
        for peer in PLATFORM_SERVICES:
            assert env[f"LABELHIVE_{peer.upper()}_URL"] == f"http://{peer}:8000", f"{name}: URL of {peer}"
        assert env["LABELHIVE_DATA_DIR"] == "/data"
        operator = {"POSTGRES_PASSWORD": "pw", "LABELHIVE_INTERNAL_SECRET": "s"}
        assert _resolve(env["DATABASE_URL"], operator) == "postgresql://labelhive:pw@postgres:5432/labelhive"
        assert _resolve(env["REDIS_URL"], operator) == "redis://redis:6379/0"
    auth = _environment(services["auth"])
    for key in ("LABELHIVE_ADMIN_USER", "LABELHIVE_ADMIN_PASSWORD", "LABELHIVE_SMTP_HOST", "LABELHIVE_SMTP_PORT"):
        assert INTERPOLATION.fullmatch(auth[key]) and INTERPOLATION.fullmatch(auth[key])["name"] == key, key
    assert _resolve(auth["LABELHIVE_SMTP_PORT"]) == "25"
    # The gateway uses Redis only: it gets no database credentials.
    assert "DATABASE_URL" not in _environment(services["gateway"])


def test_the_internal_secret_must_come_from_the_operator(services: dict[str, Any]) -> None:
    for name in (*PLATFORM_SERVICES, "gateway"):
        value = _environment(services[name])["LABELHIVE_INTERNAL_SECRET"]
        assert value == "${LABELHIVE_INTERNAL_SECRET:?set it in .env}", f"{name}: {value!r}"
        with pytest.raises(LookupError):
            _resolve(value, {})
        with pytest.raises(LookupError):  # an empty value is refused too
            _resolve(value, {"LABELHIVE_INTERNAL_SECRET": ""})


def test_no_secret_literal_is_in_the_compose_file(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                match = INTERPOLATION.fullmatch(value)
                assert value == "" or match, f"{name}.{key} holds a literal value"
                if match and match["op"] in (":-", "-"):
                    assert match["arg"] == "", f"{name}.{key} has a literal default {match['arg']!r}"
            if "://" in value:  # credentials inside a URL must come from a variable too
                names = {match["name"] for match in INTERPOLATION.finditer(value)}
                resolved = _resolve(value, {n: f"from-{n}" for n in names})
                password = urlsplit(resolved).password
                assert password is None or password.removeprefix("from-") in names, f"{name}.{key}: literal"
    with pytest.raises(LookupError):
        _resolve(_environment(services["postgres"])["POSTGRES_PASSWORD"])


def test_face_and_detect_reserve_an_nvidia_gpu(services: dict[str, Any]) -> None:
    for name in GPU_SERVICES:
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any(
            device.get("driver") == "nvidia" and device.get("count") == 1 and "gpu" in device.get("capabilities", [])
            for device in devices
        ), f"{name}: {devices}"
    for name, service in services.items():
        if name not in GPU_SERVICES:
            assert "devices" not in str(service.get("deploy", "")), f"{name} should not reserve a GPU"


def test_the_data_volume_is_shared_where_files_are_kept(compose: dict[str, Any], services: dict[str, Any]) -> None:
    mounts = {name: [str(v) for v in services[name].get("volumes", [])] for name in FILE_SERVICES}
    sources = {volume.split(":")[0] for volumes in mounts.values() for volume in volumes if volume.endswith(":/data")}
    assert len(sources) == 1, f"dataset, face and detect must share one /data volume: {mounts}"
    assert sources <= set(compose.get("volumes") or {}), "the data volume must be a named volume"


def test_every_labelhive_process_runs_the_one_image(services: dict[str, Any]) -> None:
    images = {services[name]["image"] for name in (*PLATFORM_SERVICES, "gateway")}
    assert len(images) == 1, images
    for name in (*PLATFORM_SERVICES, "gateway"):
        build = services[name]["build"]
        assert build["context"] == "." and build.get("target") == "runtime", name
        assert "ONNXRUNTIME" in build.get("args", {}), name


def test_every_command_targets_a_module_of_the_repo(services: dict[str, Any]) -> None:
    for name in (*PLATFORM_SERVICES, "gateway"):
        command = services[name]["command"]
        assert isinstance(command, list), f"{name}: use the exec (list) form"
        assert len(command) == len(UVICORN_COMMAND), f"{name}: {command}"
        for expected, actual in zip(UVICORN_COMMAND, command, strict=True):
            assert expected is None or expected == actual, f"{name}: {command}"
        target = command[3]
        expected_module = "gateway.app" if name == "gateway" else f"services.{name}.app"
        assert target == f"{expected_module}:create_app", f"{name}: {target}"
        module_file = ROOT / Path(*expected_module.split(".")).with_suffix(".py")
        if module_file.exists():  # services arrive one issue at a time: check the ones that exist
            assert re.search(r"^def create_app\(", module_file.read_text(), re.MULTILINE), module_file
    for required in ("services/auth/app.py", "gateway/app.py"):
        assert (ROOT / required).is_file(), required


def test_the_service_list_matches_the_settings() -> None:
    source = (ROOT / "shared" / "settings.py").read_text()
    match = re.search(r"^SERVICES = \(([^)]*)\)", source, re.MULTILINE)
    assert match, "shared/settings.py has no SERVICES tuple"
    assert tuple(re.findall(r'"(\w+)"', match[1])) == PLATFORM_SERVICES


def test_cpu_overlay_drops_the_gpu_reservations_and_builds_for_cpu() -> None:
    overlay = _load(CPU_OVERLAY)["services"]
    for name in GPU_SERVICES:
        assert overlay[name]["deploy"] == {"__compose_tag__": "reset"}, name
    for name in (*PLATFORM_SERVICES, "gateway"):
        assert overlay[name]["build"]["args"]["ONNXRUNTIME"] == "cpu", name


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_config_accepts_the_files(tmp_path: Path) -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    env_file = tmp_path / "test.env"
    env_file.write_text("LABELHIVE_INTERNAL_SECRET=test-only\nPOSTGRES_PASSWORD=test-only\n")
    for files in (["-f", str(COMPOSE)], ["-f", str(COMPOSE), "-f", str(CPU_OVERLAY)]):
        result = subprocess.run(
            [
                "docker",
                "compose",
                "--project-directory",
                str(ROOT),
                "--env-file",
                str(env_file),
                *files,
                "config",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="no docker-compose (v1) either")
def test_legacy_docker_compose_validates_the_schema(tmp_path: Path) -> None:
    """docker-compose 1.29 (Debian's package) still checks the file against the Compose schema of its
    day; it predates the top-level `name`, which is dropped for it."""
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(re.sub(r"(?m)^name: .*\n", "", COMPOSE.read_text()))
    env_file = tmp_path / "test.env"
    env_file.write_text("LABELHIVE_INTERNAL_SECRET=test-only\nPOSTGRES_PASSWORD=test-only\n")
    result = subprocess.run(
        [
            "docker-compose",
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "-f",
            str(copy),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- .env.example and .dockerignore --------------------------------------------------------------


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_env_example_names_every_variable_the_compose_file_reads(services: dict[str, Any]) -> None:
    example = _env_example()
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example must leave {key} empty, not a sample secret"
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", COMPOSE.read_text()))
    assert required == {"LABELHIVE_INTERNAL_SECRET", "POSTGRES_PASSWORD"}, required
    read = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    assert read <= set(example), f".env.example lacks {sorted(read - set(example))}"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context() -> None:
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for pattern in (".env", ".git", ".venv", "var"):
        assert pattern in patterns, f".dockerignore lacks {pattern}"
    for copied in ("shared", "gateway", "services", "docker", "pyproject.toml"):
        assert copied not in patterns and f"{copied}/" not in patterns, f"{copied} is needed in the context"
    assert not any(p.endswith(".onnx") for p in patterns), "the detect weights ship in services/detect/weights/"


# --- Dockerfile --------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    instructions = _dockerfile_instructions()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] if "=" in a else "" for k, a in instructions if k == "ARG"}
    assert args.get("PYTHON_IMAGE") == "python:3.11-slim"
    stages = [a for k, a in instructions if k == "FROM"]
    assert [s.split()[-1] for s in stages] == ["builder", "models", "runtime"], stages
    assert stages[0].startswith("${PYTHON_IMAGE}") and stages[-1].startswith("${PYTHON_IMAGE}")
    runtime = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    run_lines = " ".join(a for k, a in instructions if k == "RUN")
    assert "build-essential" in run_lines
    assert not any("build-essential" in a for k, a in runtime if k == "RUN"), "no compiler in the runtime"
    assert any(k == "COPY" and a.startswith("--from=builder /opt/venv") for k, a in runtime)
    users = [a for k, a in runtime if k == "USER"]
    assert users and users[-1] not in ("root", "0"), "the runtime must run as a non-root user"
    assert not any(k == "HEALTHCHECK" for k, _ in instructions), "healthchecks belong to docker-compose.yml"
    env_text = " ".join(a for k, a in runtime if k == "ENV")
    assert "LABELHIVE_DATA_DIR=/data" in env_text


def test_dockerfile_bakes_in_no_secret() -> None:
    for keyword, arguments in _dockerfile_instructions():
        if keyword in ("ENV", "ARG", "LABEL"):
            for token in shlex.split(arguments):
                name = token.split("=", 1)[0]
                assert not SECRET_NAME.search(name), f"{keyword} {token}: secrets come from the environment"
                assert name not in ("DATABASE_URL", "REDIS_URL"), f"{keyword} {token}"
    copies = " ".join(a for k, a in _dockerfile_instructions() if k in ("COPY", "ADD"))
    assert ".env" not in copies.split() and not re.search(r"(^|\s)\.(\s|$)", copies), "copy named paths only"


def test_dockerfile_installs_insightface_without_deps_after_the_rest() -> None:
    runs = [args for keyword, args in _dockerfile_instructions() if keyword == "RUN"]
    commands = [c.strip() for run in runs for c in re.split(r"&&|;|\|\|", run)]
    installs = [(i, c) for i, c in enumerate(commands) if re.search(r"\bpip\b.*\binstall\b", c)]
    insightface = [(i, c) for i, c in installs if "insightface" in c]
    assert len(insightface) == 1, installs
    position, command = insightface[0]
    assert "--no-deps" in shlex.split(command), command
    others = [i for i, c in installs if "insightface" not in c]
    assert others and max(others) < position, "insightface must be installed after everything else"
    assert any("-r" in shlex.split(c) for i, c in installs if i < position), "the requirements come first"
    # Nothing after it may bring the CPU onnxruntime back; the build checks the providers.
    assert any("check_env.py" in c for c in commands[position:]), "verify onnxruntime after insightface"


def test_dockerfile_requirements_come_from_pyproject_with_a_gpu_and_cpu_variant() -> None:
    helper = ROOT / "docker" / "requirements.py"
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in _dockerfile_instructions() if k == "ARG" and "=" in a}
    assert args.get("ONNXRUNTIME") == "gpu", "the CUDA-capable build is the default"

    def requirements(variant: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, str(helper), "--extras", "ai", "--onnxruntime", variant, str(ROOT / "pyproject.toml")],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.split()

    gpu, cpu = requirements("gpu"), requirements("cpu")
    assert any(r.startswith("onnxruntime-gpu[cuda,cudnn]") for r in gpu), gpu
    assert not any(re.match(r"onnxruntime([=<>~\[]|$)", r) for r in gpu), gpu
    assert any(re.match(r"onnxruntime==", r) for r in cpu) and not any("-gpu" in r for r in cpu), cpu
    assert any(r.startswith("faiss-cpu") for r in cpu)
    for listing in (gpu, cpu):
        assert not any(r.lower().startswith("insightface") for r in listing)
        assert any(r.startswith("fastapi") for r in listing) and any(r.startswith("uvicorn") for r in listing)
        assert "opencv-python-headless" in listing and "opencv-python" not in listing


def test_dockerfile_fetches_the_face_models_at_build_time() -> None:
    runs = " ".join(a for k, a in _dockerfile_instructions() if k == "RUN")
    assert "python -m services.face.model_files fetch" in runs
    assert "FACE_MODELS" in runs and "skip)" in runs, "the fetch step has a documented way out"
    assert (ROOT / "services" / "face" / "model_files.py").is_file()


# --- docker/healthcheck.py ----------------------------------------------------------------------------


@pytest.fixture()
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status = 200 if self.path == "/readyz" else 503
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_script_exit_codes(http_server: str) -> None:
    script = ROOT / "docker" / "healthcheck.py"

    def run(url: str) -> int:
        return subprocess.run(
            [sys.executable, str(script), url, "2"], capture_output=True, check=False, timeout=30
        ).returncode

    assert run(f"{http_server}/readyz") == 0
    assert run(f"{http_server}/healthz") == 1  # 503 from the gateway: degraded
    server_port = int(http_server.rsplit(":", 1)[1])
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert closed != server_port
    assert run(f"http://127.0.0.1:{closed}/readyz") == 1
