"""What the face API tests share: the real photos (base64), an API key, and 002's way of calling."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from tests.conftest import gateway_client, unique
from tests.fixtures.face_photos import face_photo_dir
from tests.helpers import admin_client

PREFIX = "/api/v1/engine/recocomp"
PHOTOS = (
    "person_a_1.jpg",
    "person_a_2.jpg",
    "person_b_1.jpg",
    "person_b_2.jpg",
    "impostor_1.jpg",
    "impostor_2.jpg",
    "t1.jpg",
)


@pytest.fixture(scope="session")
def photo_bytes() -> dict[str, bytes]:
    directory = face_photo_dir()
    return {name: (directory / name).read_bytes() for name in PHOTOS}


@pytest.fixture(scope="session")
def photos(photo_bytes) -> dict[str, str]:
    """Base64 of each photo, plus images that must be refused: a blank picture (no face), text (not an
    image), half a JPEG (truncated)."""
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank, "JPEG")
    encoded = {name: base64.b64encode(data).decode() for name, data in photo_bytes.items()}
    encoded["blank"] = base64.b64encode(blank.getvalue()).decode()
    encoded["text"] = base64.b64encode(b"these are words, not a picture\n" * 20).decode()
    t1 = photo_bytes["t1.jpg"]
    encoded["truncated"] = base64.b64encode(t1[: len(t1) // 2]).decode()
    return encoded


@pytest.fixture(scope="session")
def login_photos(photo_bytes) -> dict[str, str]:
    """The photos as a webcam would send them for face login: at most 400 pixels, JPEG."""
    small = {}
    for name, data in photo_bytes.items():
        image = Image.open(io.BytesIO(data)).convert("RGB")
        image.thumbnail((400, 400))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        small[name] = base64.b64encode(out.getvalue()).decode()
        assert len(small[name]) < 60_000, name
    return small


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api_key(platform) -> str:
    admin = await admin_client(platform)
    response = await admin.post("/user/api_keys", json={"name": unique("face-")})
    await admin.aclose()
    assert response.status_code == 200, response.text
    return response.json()["data"]["key"]


@pytest_asyncio.fixture(loop_scope="session")
async def face(platform, api_key) -> AsyncIterator[httpx.AsyncClient]:
    """A 002 client: an API key, and nothing else a 002 client would not send."""
    async with gateway_client(platform, headers={"X-API-Key": api_key}) as client:
        client.timeout = httpx.Timeout(120)  # a CPU embeds a batch of photos in seconds
        yield client


async def call(
    client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None, method: str = "POST", **kwargs: Any
) -> httpx.Response:
    """As 002's examples: `requests.post(url, data=json.dumps(resq), headers={'Content-type': 'application/json'})`."""
    content = None if body is None else json.dumps(body)
    return await client.request(
        method, PREFIX + path, content=content, headers={"Content-type": "application/json"}, **kwargs
    )


async def ok(
    client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None, method: str = "POST", **kwargs: Any
) -> dict[str, Any]:
    response = await call(client, path, body, method, **kwargs)
    assert response.status_code == 200 and response.json()["err_code"] == 0, response.text[:500]
    return response.json()


async def refused(
    client: httpx.AsyncClient, path: str, body: dict[str, Any] | None, code: int, status: int, method: str = "POST"
) -> dict[str, Any]:
    response = await call(client, path, body, method)
    assert response.status_code == status, response.text[:500]
    answer = response.json()
    assert answer["err_code"] == code and answer["err_msg"], answer
    return answer


async def new_collection(client: httpx.AsyncClient, prefix: str = "col") -> str:
    name = unique(prefix)
    await ok(client, "/create/collection", {"collection_name": name})
    return name


async def search(
    client: httpx.AsyncClient, collection: str, image: str, top_k: int = 5, method: str = "POST"
) -> list[dict[str, Any]]:
    body = {"collection_name": collection, "face_image": image, "top_k": top_k}
    return (await ok(client, "/face/search", body, method))["status"]
