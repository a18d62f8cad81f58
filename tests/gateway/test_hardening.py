"""The gateway against hostile and broken input (issue 9): body limits and anonymous bodies, paths that
mean different things to different HTTP stacks, malformed headers, rate-limit bypasses, pooled
connections a service closed, and errors nothing else handled.

Paths and headers that httpx itself would normalise or refuse are sent over a raw socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from shared.launcher import ROOT, Platform, free_port
from shared.sessions import SESSION_COOKIE
from tests.conftest import Backing, gateway_client, random_ip, unique
from tests.helpers import eventually, user_client

MB = 1024 * 1024


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


async def raw_request(
    port: int, request_line: str, headers: list[str] = (), body: bytes = b"", timeout: float = 15
) -> RawAnswer:
    """One request written byte for byte (`headers` as "Name: value" lines), its answer read whole.
    A Content-Length larger than `body` is a client that has not sent the rest yet: the gateway must
    answer without it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = "\r\n".join([request_line, "Host: 127.0.0.1", "Connection: close", *headers]) + "\r\n\r\n"
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        answer_headers = {}
        while (line := await asyncio.wait_for(reader.readline(), timeout)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            answer_headers[name.strip().lower()] = value.strip()
        content = await asyncio.wait_for(reader.readexactly(int(answer_headers.get("content-length", 0))), timeout)
        return RawAnswer(int(status_line.split()[1]), answer_headers, content)
    finally:
        writer.close()


def _port(platform: Platform) -> int:
    return platform.gateway_port


# Body limits and anonymous bodies -------------------------------------------------------------------


async def test_a_declared_body_over_the_routes_limit_is_refused_before_it_is_sent(platform):
    # The client declares 300 MB and sends nothing: the answer comes from the headers alone.
    r = await raw_request(
        _port(platform),
        "POST /user/recharge HTTP/1.1",
        ["Content-Type: application/json", f"Content-Length: {300 * MB}"],
    )
    assert r.status == 413 and r.json()["code"] == 1005 and "limit" in r.json()["message"]
    assert r.headers["x-request-id"]
    # 002 allows several MB of base64 images, not 100 MB; its own envelope.
    r = await raw_request(
        _port(platform),
        "POST /api/v1/engine/recocomp/face/search HTTP/1.1",
        ["Content-Type: application/json", f"Content-Length: {100 * MB}"],
    )
    assert r.status == 413 and r.json()["err_code"] == 413
    # 001's clients read its Chinese wording.
    r = await raw_request(
        _port(platform), "PUT /data/label HTTP/1.1", ["Content-Type: application/json", f"Content-Length: {2 * MB}"]
    )
    assert r.status == 413 and r.json()["response"].startswith("数据过大")


async def test_an_anonymous_body_for_a_route_that_needs_a_caller_is_refused_unread(platform):
    # 10 MB is within the CSV upload's limit, so only the missing credential can refuse it.
    r = await raw_request(
        _port(platform),
        "POST /task/upload_res/1 HTTP/1.1",
        ["Content-Type: multipart/form-data; boundary=x", f"Content-Length: {10 * MB}"],
    )
    assert r.status == 401 and r.json() == {"code": 1001, "message": "not_logged_in", "data": {}}
    r = await raw_request(
        _port(platform), "PUT /data/label HTTP/1.1", ["Content-Type: application/json", f"Content-Length: {MB // 2}"]
    )
    assert (r.status, r.json()) == (401, {"response": "未登录"})


async def test_public_routes_and_bodiless_requests_still_reach_their_service(client):
    r = await client.post("/user/login", json={"user_name": unique("nobody"), "password": "pass-word-1"})
    assert r.status_code == 400 and r.json()["code"] != 1001
    # A bodiless anonymous request is answered by its service, in its document's words.
    r = await client.get("/task/list")
    assert (r.status_code, r.json()) == (401, {"response": "请先登录"})


async def test_a_streamed_body_is_stopped_at_the_routes_limit(platform, mailbox):
    client, _ = await user_client(platform, mailbox)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked, counted while it streams
        yield b'{"time": 1, "type": "x", "url": "https://example.com/'
        for _ in range(40):
            yield b"a" * 64 * 1024
        yield b'"}'

    try:
        r = await client.post("/advertise/publish", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["code"] == 1005
        # The same session still works afterwards.
        assert (await client.get("/advertise/get_my_ad")).json()["code"] == 0
    finally:
        await client.aclose()


# Paths ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/user/../internal/users/1",
        "/user/%2e%2e/internal/users/1",
        "/user/..%2Finternal/users/1",
        "/user/../metrics",
        "/picbed/..%5C..%5Cmetrics",
        "/user/./get-current",
        "//user/get-current",
        "/user//get-current",
        "/task/%0B",
        "/task/%00",
        "/task/%7F",
        "/user/%5Cget-current",
    ],
)
async def test_paths_that_stacks_read_differently_are_refused_in_the_envelope(platform, target):
    r = await raw_request(_port(platform), f"GET {target} HTTP/1.1")
    assert r.status == 404 and r.json() == {"code": 1000, "message": "NOT_FOUND", "data": {}}, (target, r)
    assert b"labelhive_http_requests_total" not in r.body


async def test_a_dot_segment_is_no_way_around_the_login_limit(platform):
    body = json.dumps({"user_name": unique("victim"), "password": "wrong-guess"}).encode()
    r = await raw_request(
        _port(platform),
        "POST /user/./login HTTP/1.1",
        ["Content-Type: application/json", f"Content-Length: {len(body)}"],
        body,
    )
    assert r.status == 404
    # The 001 document's routes refuse in 001's envelope.
    r = await raw_request(_port(platform), "GET /dataset/./list HTTP/1.1")
    assert (r.status, r.json()) == (404, {"response": "不存在"})


async def test_a_method_no_route_takes_is_refused_in_the_envelope(platform):
    r = await raw_request(_port(platform), "TRACE /user/userinfo/1 HTTP/1.1")
    assert r.status == 405 and r.json() == {"code": 1005, "message": "method not allowed", "data": {}}


# Headers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-Foo: bar ", "Authorization: Bearer ", "Authorization: Bearer", "X-Empty:"])
async def test_headers_with_stray_whitespace_or_no_value_are_forwarded_cleanly(platform, header):
    r = await raw_request(_port(platform), "GET /user/get-current HTTP/1.1", [header])
    assert (r.status, r.json()) == (200, {"response": "未登录"}), header


async def test_a_signed_in_caller_with_stray_whitespace_is_still_recognised(platform, mailbox):
    client, account = await user_client(platform, mailbox)
    token = client.cookies[SESSION_COOKIE]
    await client.aclose()
    r = await raw_request(
        _port(platform), "GET /user/get-current HTTP/1.1", [f"Authorization: Bearer {token}", "X-Trailing: yes "]
    )
    assert r.status == 200 and r.json()["username"] == account.user_name


# Rate limits ---------------------------------------------------------------------------------------


async def test_a_decoy_user_name_does_not_escape_the_000_login_limit(platform):
    victim = unique("victim")
    async with gateway_client(platform) as c:
        assert (await c.post("/api/users", json={"user_name": victim, "password": "123456"})).json()["err_no"] == "0"
    statuses = []
    # Each from a new address and with a new decoy: the victim's count still grows. 21 attempts put
    # more than 10 into one fixed window even when a window ends among them.
    for _ in range(21):
        async with gateway_client(platform) as c:
            r = await c.post("/login", json={"user_name": unique("decoy"), "username": victim, "password": "wrong"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429 and statuses[:10] == [400] * 10
    assert r.json()["err_no"] == "4202"


async def _login_attempts_until_limited(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> bool:
    # Fixed 60 s windows of 60: 125 attempts put more than 60 into one window wherever they start.
    for _ in range(125):
        r = await client.get("/user/login", params={"username": unique("u"), "password": "x"}, headers=headers)
        if r.status_code == 429:
            return True
    return False


async def test_x_forwarded_for_counts_its_right_most_untrusted_hop(platform):
    # The test clients reach the gateway through 127.0.0.1, a trusted proxy: what a client wrote to
    # the left of the hop the proxy appended proves nothing.
    real = random_ip()
    async with gateway_client(platform) as c:
        assert await _login_attempts_until_limited(c, {"X-Forwarded-For": f"{random_ip()}, {real}"})
        # The address the proxy saw is limited; another one is not.
        r = await c.get(
            "/user/login",
            params={"username": "a", "password": "b"},
            headers={"X-Forwarded-For": f"{random_ip()}, {real}"},
        )
        assert r.status_code == 429
        r = await c.get(
            "/user/login",
            params={"username": "a", "password": "b"},
            headers={"X-Forwarded-For": f"{real}, {random_ip()}"},
        )
        assert r.status_code != 429


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(platform):
    # 127.0.0.2 is a local address that is not a trusted proxy: its own address is the one counted,
    # whatever X-Forwarded-For it makes up.
    async with gateway_client(platform, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2")) as c:
        c.headers["X-Forwarded-For"] = random_ip()
        c.event_hooks["request"] = [_new_forwarded_for]
        assert await _login_attempts_until_limited(c)


async def _new_forwarded_for(request: httpx.Request) -> None:
    request.headers["X-Forwarded-For"] = random_ip()


async def test_email_change_code_guesses_are_rate_limited(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    target = f"{unique('new')}@example.com"
    statuses = []
    try:
        for i in range(21):  # 10 a window: 21 reach an 11th in one window wherever a window ends
            r = await client.post("/user/change_email", json={"newemail": target, "verifycode": f"{i:06d}"})
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
    finally:
        await client.aclose()
    assert statuses[-1] == 429 and 429 not in statuses[:10]
    assert r.json() == {"code": 1008, "message": "too many requests", "data": {}}


# A gateway in front of a misbehaving service --------------------------------------------------------


class FlakyService:
    """Stands in for the auth service where the real one cannot misbehave on demand: `/user/boom`
    answers 500 and then drops the next request on that keep-alive connection unanswered (as uvicorn
    does when it closes a connection after a 500 while the next request is on its way);
    `/user/truncated` promises more body than it sends; everything else answers 200."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.requests: list[str] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        poisoned = False
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(v)
                        for k, _, v in (line.partition(":") for line in lines[1:])
                        if k.strip().lower() == "content-length"
                    ),
                    0,
                )
                await reader.readexactly(length)
                if poisoned:
                    return
                path = lines[0].split()[1].partition("?")[0]
                self.requests.append(f"{lines[0].split()[0]} {path}")
                if path == "/user/boom":
                    writer.write(_http(500, b'{"code": 1003, "message": "internal error", "data": {}}'))
                    poisoned = True
                elif path == "/user/truncated":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\ncontent-type: application/json\r\n\r\n{")
                    await writer.drain()
                    return
                else:
                    writer.write(_http(200, b'{"code": 0, "message": "ok", "data": {}}'))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _http(status: int, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
    )


@dataclass
class LoneGateway:
    url: str
    port: int
    log: Path
    flaky: FlakyService


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def lone_gateway(platform: Platform, backing: Backing) -> AsyncIterator[LoneGateway]:
    """A second gateway whose auth service is a FlakyService and whose Redis is out of reach (no
    route these tests call needs Redis unless it presents a session)."""
    flaky = FlakyService()
    await flaky.start()
    port = free_port()
    log = ROOT / "var" / "test-logs" / backing.namespace / "lone-gateway.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **platform.env(),
        "LABELHIVE_AUTH_URL": f"http://127.0.0.1:{flaky.port}",
        "LABELHIVE_SERVICES": "auth",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "gateway.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as probe:

            async def ready() -> bool:
                assert process.poll() is None, log.read_text()[-2000:]
                with contextlib.suppress(httpx.TransportError):
                    return (await probe.get(f"{url}/get_csrf_token")).status_code == 200
                return False

            await eventually(ready, timeout=30, interval=0.2, what="the lone gateway ready")
        yield LoneGateway(url, port, log, flaky)
    finally:
        process.terminate()
        process.wait(10)
        await flaky.stop()


async def test_a_request_on_a_connection_the_service_closed_is_retried_when_safe(lone_gateway):
    async with httpx.AsyncClient(base_url=lone_gateway.url) as c:
        assert (await c.get("/user/boom")).status_code == 500
        # The pooled connection is dead: a GET goes again on a fresh one.
        r = await c.get("/user/get-current")
        assert r.status_code == 200 and r.json()["code"] == 0
        # A POST may have been read: not repeated, unless its Idempotency-Key makes it safe.
        assert (await c.get("/user/boom")).status_code == 500
        r = await c.post("/user/reset_invite_code")
        assert r.status_code == 503 and r.json()["code"] == 1002
        assert (await c.get("/user/boom")).status_code == 500
        r = await c.post("/user/reset_invite_code", headers={"Idempotency-Key": unique("k")})
        assert r.status_code == 200 and r.json()["code"] == 0
    assert lone_gateway.flaky.requests.count("POST /user/reset_invite_code") == 1


async def test_a_service_that_breaks_off_its_answer_is_a_503_in_the_envelope(lone_gateway):
    async with httpx.AsyncClient(base_url=lone_gateway.url) as c:
        r = await c.get("/user/truncated", headers={"X-Request-ID": "truncated1"})
    assert r.status_code == 503 and r.json()["code"] == 1002
    assert r.headers["x-request-id"] == "truncated1"


async def test_a_service_not_deployed_answers_503_in_its_routes_envelope(lone_gateway):
    # This gateway deploys auth alone (LABELHIVE_SERVICES=auth).
    async with httpx.AsyncClient(base_url=lone_gateway.url) as c:
        r = await c.post("/api/detect")
        assert r.status_code == 503 and set(r.json()) == {"error", "details"}
        r = await c.post("/api/v1/engine/recocomp/version")
        assert r.status_code == 503 and r.json()["err_code"] == 503


async def test_redis_out_of_reach_is_a_503_answered_and_logged_with_the_request_id(lone_gateway):
    # Resolving the session needs Redis, which this gateway cannot reach.
    async with httpx.AsyncClient(base_url=lone_gateway.url, cookies={SESSION_COOKIE: "some-session"}) as c:
        r = await c.get("/user/userinfo/1", headers={"X-Request-ID": "redisdown1"})
    assert r.status_code == 503 and r.json()["code"] == 1002
    assert r.headers["x-request-id"] == "redisdown1"
    lines = [json.loads(line) for line in lone_gateway.log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "redisdown1" and line["level"] in ("WARNING", "ERROR") for line in lines)
