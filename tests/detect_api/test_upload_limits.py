"""Detect's form limits through the gateway (document 004): an image stops being read at its size
limit and a request at its own, answered with 004's `{"error","details"}` while the client is still
sending, and malformed forms are 400s, never a 5xx."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest

from shared.sessions import SESSION_COOKIE
from tests.conftest import random_ip
from tests.fixtures.steel import steel_photo
from tests.helpers import user_client

BOUNDARY = "limitsboundary7f3a"
MB = 1024 * 1024
# Detect's defaults (services/detect/settings.py): the test platform leaves them as they are.
MAX_IMAGE_BYTES = 20 * MB
MAX_IMAGES = 64
MAX_REQUEST_BYTES = MAX_IMAGES * MAX_IMAGE_BYTES + MB


@pytest.fixture
async def session(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    yield client
    await client.aclose()


def _part_head(name: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()


def _form(*parts: tuple[str, str | None, bytes], close: bool = True) -> bytes:
    body = b"".join(_part_head(name, filename) + data + b"\r\n" for name, filename, data in parts)
    return body + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


async def _post_form(client: httpx.AsyncClient, body: bytes, content_type: str | None = None) -> httpx.Response:
    return await client.post(
        "/api/detect",
        content=body,
        headers={"Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}"},
    )


def _written_bytes(platform, service: str) -> int:
    """What the service's process has passed to write() so far (/proc/PID/io `wchar`): a body it
    spools to a temporary file shows up here, whatever the file system under it."""
    io_counters = Path(f"/proc/{platform.processes[service].pid}/io").read_text()
    return int(re.search(r"^wchar: (\d+)$", io_counters, re.M).group(1))


async def _send_until_answered(
    platform, token: str, preamble: bytes, declared: int, send_at_most: int
) -> tuple[int, dict, int]:
    """POSTs a body declared as `declared` bytes over a raw connection: `preamble`, then zeros in 1 MB
    chunks up to `send_at_most` bytes, reading the answer all the while. Returns (status, JSON
    answer, bytes sent when it came)."""
    url = httpx.URL(platform.gateway_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = (
        f"POST /api/detect HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nAuthorization: Bearer {token}\r\n"
        f"X-Forwarded-For: {random_ip()}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    writer.write(head.encode() + preamble)
    sent = len(preamble)

    async def send_body() -> None:
        nonlocal sent
        chunk = bytes(MB)
        try:
            while sent < send_at_most:
                piece = chunk[: send_at_most - sent]
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
        except ConnectionError:  # the platform closed the connection: it will not read the rest
            pass

    sender = asyncio.create_task(send_body())
    try:
        # A guard against a hang, not a timing: a platform that waits for the rest of a body it
        # should have refused never answers.
        head_lines = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)).decode().split("\r\n")
        answered_at = sent
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in head_lines[1:] if line)}
        answer = json.loads(await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 30))
    finally:
        sender.cancel()
        writer.close()
    return int(head_lines[0].split()[1]), answer, answered_at


async def test_an_oversized_image_is_refused_without_being_spooled(session, platform):
    declared = 200 * MB
    written_before = _written_bytes(platform, "detect")
    status, answer, _ = await _send_until_answered(
        platform, session.cookies[SESSION_COOKIE], _part_head("images", "huge.jpg"), declared, declared
    )
    # Reading stopped at the image's limit: nothing of the 200 MB was written anywhere (a spooled
    # upload writes all of it to a temporary file before any size check).
    assert _written_bytes(platform, "detect") - written_before < MAX_IMAGE_BYTES // 4
    assert status == 400, answer
    assert answer == {
        "error": "Invalid image data for huge.jpg",
        "details": f"larger than the limit of {MAX_IMAGE_BYTES} bytes",
    }


async def test_a_request_over_its_limit_is_refused_from_its_length(session, platform):
    status, answer, sent = await _send_until_answered(
        platform, session.cookies[SESSION_COOKIE], _part_head("images", "a.jpg"), MAX_REQUEST_BYTES + 1, 64 * MB
    )
    assert status == 413, answer
    # The gateway or the service answers, whichever sees the length first; either names the limit.
    assert set(answer) == {"error", "details"} and str(MAX_REQUEST_BYTES) in json.dumps(answer)
    assert sent < 64 * MB, "answered only once the client stopped sending"


async def test_too_many_images(session):
    parts = [("images", f"{i}.jpg", b"x") for i in range(MAX_IMAGES + 1)]
    r = await _post_form(session, _form(*parts))
    assert r.status_code == 400
    assert r.json() == {"error": "Too many images", "details": f"at most {MAX_IMAGES} images per request"}


async def test_malformed_forms_are_400s(session):
    photo = steel_photo(31)
    r = await _post_form(session, _form(("images", "a.jpg", photo), close=False))
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid form data", "details": "the multipart body ends before its closing boundary"}

    r = await _post_form(session, _form(("images", "a.jpg", photo)), content_type="multipart/form-data")
    assert r.status_code == 400 and r.json()["error"] == "Invalid form data" and "boundary" in r.json()["details"]

    r = await _post_form(session, b"--" + BOUNDARY.encode() + b"\r\nno headers here at all\r\n\r\n")
    assert r.status_code == 400 and r.json()["error"] == "Invalid form data"

    nameless = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode() + photo + f"\r\n--{BOUNDARY}--\r\n".encode()
    r = await _post_form(session, nameless)
    assert r.status_code == 400 and r.json()["error"] == "Invalid form data"

    r = await _post_form(session, _form(("images", "bad\x00name.jpg", photo)))
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid form data", "details": "a file name holds a NUL character"}

    r = await session.post("/api/detect", json={"images": ["not", "files"]})
    assert r.status_code == 400 and r.json()["error"] == "No images provided"


async def test_only_files_of_the_images_field_are_images(session):
    photo = steel_photo(32)
    r = await _post_form(session, _form(("images", None, b"a text field, not a file"), ("other", "x.jpg", photo)))
    assert r.status_code == 400 and r.json()["error"] == "No images provided"

    r = await _post_form(
        session,
        _form(
            ("note", None, b"hello"),
            ("images", "plate.jpg", photo),
            ("other", "x.jpg", b"ignored"),
            ("images", "", photo),
        ),
    )
    assert r.status_code == 200, r.text
    assert [result["name"] for result in r.json()] == ["plate.jpg", "uploaded_image.jpg"]
