"""Document 003's `POST /task/upload_data`, and its per-membership wait."""

from __future__ import annotations

import json

import httpx
import pytest

from services.dataset.uploads import UploadThrottle
from shared.errors import RateLimited, ServiceUnavailable
from shared.http import ServiceClient
from shared.identity import CALLER_HEADER, sign_caller
from shared.redis import Keys
from tests.conftest import unique
from tests.dataset_api.files import jpeg, zip_of


async def _upload(client, members: dict[str, bytes], data_type: str = "text"):
    return await client.post(
        "/task/upload_data",
        params={"data_type": data_type},
        files={"file": ("data.zip", zip_of(members), "application/zip")},
    )


async def test_text_archive(manager, db, platform):
    client, _ = manager
    r = await _upload(client, {"1.txt": "第一题".encode(), "2.txt": b"second", "3.txt": b"third"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["code"], body["message"]) == (0, "succeed")
    assert [f["filename"] for f in body["data"]] == ["1.txt", "2.txt", "3.txt"]
    ids = [int(f["tag"]) for f in body["data"]]
    rows = await db.fetch("SELECT id, content FROM dataset.texts WHERE id = ANY($1::bigint[]) ORDER BY id", ids)
    assert [r["content"] for r in rows] == ["第一题", "second", "third"]

    # The tasks service reads a text by its id.
    async with httpx.AsyncClient(base_url=platform.service_url("dataset")) as direct:
        text = (
            await direct.get(
                f"/internal/texts/{ids[0]}", headers={CALLER_HEADER: sign_caller("tasks", platform.secret)}
            )
        ).json()["data"]
        assert (text["text"], text["filename"]) == ("第一题", "1.txt")
        assert (await direct.get(f"/internal/texts/{ids[0]}")).status_code == 400

    # The upload is a dataset of its own: JSON Lines export.
    dataset_id = r.headers["X-Labelhive-Dataset-Id"]
    lines = (await client.get(f"/dataset/export/{dataset_id}", params={"format": "jsonl"})).text.splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["第一题", "second", "third"]


async def test_image_archive(manager):
    client, _ = manager
    images = {"1.jpg": jpeg(), "2.jpg": jpeg(32, 32)}
    r = await _upload(client, {**images, "__MACOSX/._1.jpg": b"junk", "folder/": b""}, "image")
    body = r.json()
    assert r.status_code == 200 and body["code"] == 0, r.text
    for entry in body["data"]:
        assert entry["tag"].startswith("/picbed/") and entry["tag"].endswith(".jpg")
        picture = await client.get(entry["tag"])
        assert picture.content == images[entry["filename"]] and picture.headers["content-type"] == "image/jpeg"


async def test_sequence_interrupt(manager, db):
    client, _ = manager
    r = await _upload(client, {"1.txt": b"a", "2.txt": b"b", "4.txt": b"d", "x.txt": b"?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["code"], body["message"]) == (20, "file sequence interrupt")
    assert (body["data"]["upload_num"], body["data"]["legal_num"]) == (4, 2)
    assert [f["filename"] for f in body["data"]["files"]] == ["1.txt", "2.txt"]
    kept = await db.fetchval(
        "SELECT count(*) FROM dataset.texts WHERE dataset_id = $1", int(r.headers["X-Labelhive-Dataset-Id"])
    )
    assert kept == 2


async def test_errors(manager, tagger, client):
    owner, _ = manager
    r = await _upload(owner, {"1.txt": b"a", "2.jpg": jpeg()})
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (400, 32, "data type error")
    r = await _upload(owner, {"1.txt": b"a"}, "video")
    assert (r.status_code, r.json()["code"]) == (400, 32)
    r = await owner.post("/task/upload_data", files={"file": ("d.zip", zip_of({"1.txt": b"a"}), "application/zip")})
    assert (r.status_code, r.json()["code"]) == (400, 1005) and "data_type" in r.json()["message"]
    r = await owner.post("/task/upload_data", params={"data_type": "text"})
    assert (r.status_code, r.json()["code"]) == (400, 1005)
    r = await _upload(owner, {}, "text")
    assert (r.status_code, r.json()["code"]) == (400, 1005) and "no files" in r.json()["message"]
    r = await _upload(owner, {"1.jpg": b"not a jpeg"}, "image")
    assert r.status_code == 400 and "1.jpg" in r.json()["message"]
    r = await _upload(client, {"1.txt": b"a"})
    assert (r.status_code, r.json()["code"]) == (401, 1001)
    r = await _upload(tagger[0], {"1.txt": b"a"})
    assert (r.status_code, r.json()["code"]) == (400, 1006)


def _auth_answering(level: int | None) -> ServiceClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if level is None:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"code": 0, "message": "succeed", "data": {"membership_level": level}})

    return ServiceClient("auth", "http://auth", "dataset", "secret", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(("level", "seconds_per_mb"), [(0, 10), (1, 7), (2, 3), (3, 0)])
async def test_throttle_waits_by_membership(redis, level, seconds_per_mb):
    throttle = UploadThrottle(redis, Keys(unique("throttle")), _auth_answering(level), enabled=True)
    user = 7
    assert await throttle.begin(user) == seconds_per_mb
    with pytest.raises(RateLimited):  # one upload at a time
        await throttle.begin(user)
    await throttle.finish(user, archive_bytes=3 * 1024 * 1024 + 1, seconds_per_mb=seconds_per_mb)
    if seconds_per_mb:
        with pytest.raises(RateLimited) as refused:
            await throttle.begin(user)
        assert 0 < refused.value.data["retry_after"] <= 3 * seconds_per_mb + 1
    else:
        assert await throttle.begin(user) == 0  # diamond members never wait
    await throttle.abort(user)
    assert await throttle.begin(user) == seconds_per_mb


async def test_throttle_needs_the_membership(redis):
    throttle = UploadThrottle(redis, Keys(unique("throttle")), _auth_answering(None), enabled=True)
    with pytest.raises(ServiceUnavailable):
        await throttle.begin(1)
