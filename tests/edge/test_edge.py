"""The edge every service shares (shared/edge.py, shared/service_app.py): input no router expected
gets a 4xx in the route's envelope, never a 500, whichever service owns the route."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, Query

from shared.body_limits import DEFAULT_BODY_LIMIT, WHOLE_BODY_LIMIT
from shared.identity import IDENTITY_HEADER, Identity, sign_identity
from shared.params import Id
from shared.requestctx import current_request_id
from shared.service_app import build_service_app
from shared.settings import PlatformSettings
from tests.conftest import unique
from tests.helpers import Account, user_client

BEYOND_INT32 = 5614184779
BEYOND_INT64 = 2**70
DEEP = 5000


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def requester(platform, mailbox) -> AsyncIterator[tuple[httpx.AsyncClient, Account]]:
    client, account = await user_client(platform, mailbox, "demand")
    yield client, account
    await client.aclose()


def _deep_json(levels: int = DEEP) -> bytes:
    return b"[" * levels + b"]" * levels


# ------------------------------------------------------------------------------ ids out of range


@pytest.mark.parametrize(
    "path", [f"/task/{99999999999}", f"/task/{87652804898}/1", f"/task/{BEYOND_INT64}", f"/task/taginfo/{BEYOND_INT32}"]
)
async def test_task_ids_beyond_their_column_name_no_task(requester, path):
    client, _ = requester
    response = await client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["code"] in (1000, 11)  # NOT_FOUND, or 003's "task does not exist"


async def test_auth_ids_beyond_their_column_name_nothing(admin):
    for response in (
        await admin.post(f"/user/check_user/{BEYOND_INT32}"),
        await admin.post(f"/user/ban_user/{BEYOND_INT64}"),
        await admin.post(f"/advertise/renew/{BEYOND_INT32}", json={"time": 3600}),
        await admin.delete(f"/user/api_keys/{BEYOND_INT64}"),
    ):
        assert response.status_code == 404, (response.request.url, response.text)
        assert response.json()["code"] == 1000


async def test_a_figure_id_beyond_int64_is_not_found_in_004s_envelope(requester):
    client, _ = requester
    response = await client.get(f"/api/data/figure/{BEYOND_INT64}")
    assert response.status_code == 404, response.text
    assert set(response.json()) == {"error", "details"}


# --------------------------------------------------------------------------------- NUL characters


async def test_nul_in_a_json_body_is_a_400_in_003s_envelope(client):
    response = await client.post("/user/login", json={"user_name": "ro\u0000ot", "password": "pass-word-1"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 1005 and "NUL" in body["message"]
    response = await client.post("/user/get_verifycode", json={"email": "a\u0000@example.com"})
    assert response.status_code == 400 and response.json()["code"] == 1005, response.text


async def test_an_escaped_backslash_before_u0000_is_plain_text_not_nul(client):
    # '\\u0000' in JSON is a backslash and the text "u0000": allowed (here: simply a wrong login).
    response = await client.post(
        "/user/login",
        content=b'{"user_name": "x\\\\u0000", "password": "p"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code != 500 and "NUL" not in response.text, response.text


async def test_nul_in_a_query_string_is_a_400_in_the_routes_envelope(requester):
    client, _ = requester
    response = await client.get("/task/list-by-dataset", params={"dataset_id": "1\u00002"})
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["response"] and "NUL" in response.json()["response"]
    response = await client.get("/api/data/search", params={"name": "a\u0000"})
    assert response.status_code == 400 and set(response.json()) == {"error", "details"}, response.text


async def test_nul_in_a_multipart_field_is_refused_by_the_database_fallback(requester):
    client, _ = requester
    fields = {
        "name": (None, unique("nul")),
        "data_type": (None, "1"),
        "desc": (None, "a\u0000description"),
        "label_type": (None, "1:cat"),
    }
    response = await client.post("/data_module/create_dataset", files=fields)
    assert response.status_code == 400, response.text
    assert response.json()["err_no"] == "4103" and response.json()["request_id"]


# ------------------------------------------------------------------------------------- deep JSON


async def test_deeply_nested_json_is_a_400_for_every_reader(requester):
    client, _ = requester
    headers = {"Content-Type": "application/json"}
    # auth's own reader (003), tasks' 001 reader, face's 002 reader, and a FastAPI-declared body.
    register = await client.post("/user/register", content=_deep_json(), headers=headers)
    assert register.status_code == 400 and register.json()["code"] == 1005, register.text
    assert "64" in register.json()["message"]
    assign = await client.post("/task/assign", content=_deep_json(), headers=headers)
    assert assign.status_code == 400 and list(assign.json()) == ["response"], assign.text
    insert = await client.post("/api/v1/engine/recocomp/face/insert", content=_deep_json(), headers=headers)
    assert insert.status_code == 400 and set(insert.json()) == {"err_code", "err_msg"}, insert.text
    recharge = await client.post("/user/recharge", content=b'{"amount": ' + _deep_json() + b"}", headers=headers)
    assert recharge.status_code == 400 and recharge.json()["code"] == 1005, recharge.text


async def test_json_nested_within_the_cap_reaches_the_route(client):
    nested = json.dumps({"user_name": [[[[["x"]]]]], "password": "p"})
    response = await client.post("/user/login", content=nested, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "64" not in response.json()["message"], response.text


# ------------------------------------------------------------------------------------ body limits


async def test_a_service_refuses_a_body_over_its_routes_limit_by_itself(platform):
    # Straight to the service, as a request that slipped past the gateway would come.
    url = f"http://127.0.0.1:{platform.service_ports['auth']}/user/recharge"
    too_large = b'{"amount": 1, "pad": "' + b"x" * DEFAULT_BODY_LIMIT + b'"}'
    async with httpx.AsyncClient(timeout=30) as direct:
        declared = await direct.post(url, content=too_large, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413, declared.text
        assert declared.json()["code"] == 1005 and str(DEFAULT_BODY_LIMIT) in declared.json()["message"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while it streams
            for start in range(0, len(too_large), 64 * 1024):
                yield too_large[start : start + 64 * 1024]

        streamed = await direct.post(url, content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413, streamed.text
        assert streamed.headers["x-request-id"]


async def test_a_multipart_body_streamed_past_its_routes_limit_is_a_413(platform, requester):
    _, account = requester
    boundary = "edgeboundary"
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        IDENTITY_HEADER: sign_identity(Identity(account.user_id, account.user_name, account.role), platform.secret),
    }
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="upload_file"; filename="l.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        for _ in range(40):  # 2.5 MB, past the 1 MB of a JSON route and the 2 MB of create_dataset
            yield b"1:cat\n" * 10_000 + b"\n" * 4_000

    async with httpx.AsyncClient(timeout=30) as direct:
        login = await direct.post(
            f"http://127.0.0.1:{platform.service_ports['auth']}/user/login", content=chunks(), headers=headers
        )
        assert login.status_code == 413 and login.json()["code"] == 1005, login.text
        upload = await direct.post(
            f"http://127.0.0.1:{platform.service_ports['dataset']}/data_module/create_dataset",
            content=chunks(),
            headers=headers,
        )
        assert upload.status_code == 413 and upload.json()["err_no"] == "4004", upload.text


async def test_a_raw_body_to_an_upload_route_is_held_to_the_whole_body_limit(platform, requester):
    """Upload routes stream multipart files; anything else is read whole, so it never gets their limit."""
    _, account = requester
    identity = sign_identity(Identity(account.user_id, account.user_name, account.role), platform.secret)
    chunk = b"x" * (1024 * 1024)

    async def raw() -> AsyncIterator[bytes]:  # no Content-Length: counted while it streams
        for _ in range(WHOLE_BODY_LIMIT // len(chunk) + 1):
            yield chunk

    headers = {"Content-Type": "application/octet-stream", IDENTITY_HEADER: identity}
    async with httpx.AsyncClient(timeout=60) as direct:
        streamed = await direct.post(f"{platform.service_url('dataset')}/video/", content=raw(), headers=headers)
        assert streamed.status_code == 413 and str(WHOLE_BODY_LIMIT) in streamed.json()["message"], streamed.text
    # The gateway refuses the same from its declared length, before a byte of the body is sent.
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.gateway_port)
    cookie = "; ".join(f"{name}={value}" for name, value in requester[0].cookies.items())
    writer.write(
        f"POST /video/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {WHOLE_BODY_LIMIT + 1}\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert status_line.split()[1] == b"413", status_line


async def test_upload_routes_take_more_than_the_default(requester):
    client, _ = requester
    body = json.dumps({"collection_name": unique("c"), "face_image": ["x" * (2 * DEFAULT_BODY_LIMIT)]})
    response = await client.post(
        "/api/v1/engine/recocomp/face/insert", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code != 413, response.text


# ---------------------------------------------------------------------------- unhandled errors


async def test_an_unhandled_error_carries_the_request_id_in_the_answer_and_the_log():
    # No route of the platform fails on purpose, so a service built the same way gets one that does.
    broken = APIRouter()

    @broken.get("/data_module/broken")
    async def fails() -> None:
        raise RuntimeError("a bug")

    @broken.get("/broken")
    async def fails_too() -> None:
        raise RuntimeError("a bug")

    app = build_service_app(
        name="edge-test",
        settings=PlatformSettings(internal_secret="x"),
        routers=[broken],
        uses_database=False,
        title="edge test",
    )
    seen: list[tuple[str, str]] = []

    class Remember(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), current_request_id.get()))

    handler = Remember()
    logging.getLogger("shared.service_app").addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as direct:
            answer_000 = await direct.get("/data_module/broken", headers={"X-Request-ID": "complaint-42"})
            answer_003 = await direct.get("/broken")
    finally:
        logging.getLogger("shared.service_app").removeHandler(handler)
    assert answer_000.status_code == 500 and answer_000.headers["x-request-id"] == "complaint-42"
    assert answer_000.json()["request_id"] == "complaint-42" and answer_000.json()["err_no"] == "4500"
    generated = answer_003.headers["x-request-id"]
    assert answer_003.status_code == 500 and answer_003.json()["data"] == {"request_id": generated}
    assert ("unhandled error on GET /data_module/broken", "complaint-42") in seen
    assert ("unhandled error on GET /broken", generated) in seen


# ------------------------------------------------------------------------------------ the schema


async def test_the_schema_declares_the_errors_routes_really_answer(client):
    spec = (await client.get("/openapi.json")).json()
    operation_ids = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if path.startswith(("/get_csrf_token", "/healthz")):
                continue
            assert "400" in responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            operation_ids.append(operation["operationId"])
    assert len(operation_ids) == len(set(operation_ids))
    task = spec["paths"]["/task/{task_id}"]["get"]["responses"]
    assert {"400", "401", "403", "404"} <= set(task)
    assert task["400"]["content"]["application/json"]["schema"]["$ref"].endswith("Error003")
    figure = spec["paths"]["/api/data/figure/{fig_id}"]["get"]["responses"]
    assert figure["404"]["content"]["application/json"]["schema"]["$ref"].endswith("Error004")
    assert "HTTPValidationError" not in json.dumps(spec)


async def test_an_id_parameter_outside_its_range_names_nothing():
    # For routers that adopt shared/params.py: the range is refused before any query, as a 404.
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: Id, page: Annotated[int, Query(ge=1, le=100)] = 1) -> dict[str, int]:
        return {"id": thing_id, "page": page}

    app = build_service_app(
        name="edge-test",
        settings=PlatformSettings(internal_secret="x"),
        routers=[router],
        uses_database=False,
        title="edge test",
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as direct:
        assert (await direct.get("/things/7")).json() == {"id": 7, "page": 1}
        for beyond in (0, 2**31, 2**70):
            response = await direct.get(f"/things/{beyond}")
            assert response.status_code == 404 and response.json()["code"] == 1000, response.text
        assert (await direct.get("/things/seven")).status_code == 400
        assert (await direct.get("/things/7", params={"page": 1000})).status_code == 400


# ------------------------------------------------------------------------------------ JSON values


async def test_a_hand_read_body_keeps_an_integer_beyond_64_bits_an_integer(platform, mailbox, admin):
    # orjson would read it as a float, which the strict integer refuses with another message.
    client, account = await user_client(platform, mailbox, "demand")
    await admin.post(f"/user/check_user/{account.user_id}")
    body = {
        "task_type": "text",
        "task_name": unique("big"),
        "accept_method": "manual",
        "strategy": "toall",
        "distribute_user_num": BEYOND_INT64,
        "files": [{"filename": "1.txt", "tag": "1"}],
    }
    response = await client.post("/task/", content=json.dumps(body), headers={"Content-Type": "application/json"})
    await client.aclose()
    assert response.status_code == 400, response.text
    assert "distribute_user_num: Input should be less than or equal to 100000" in response.json()["message"]
