"""Files in S3-compatible storage, through the gateway: nothing the dataset service keeps is replica-local.

The dataset service is restarted with `LABELHIVE_OBJECT_STORE=s3://...` against an S3 server the test
starts (moto), as one replica with a data dir of its own; what it stored is then read, ranged, exported
and deleted through a second replica with another, empty data dir. The platform's own dataset service
(local store) comes back afterwards.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio

from shared.launcher import ROOT, Platform, free_port
from tests.conftest import unique
from tests.dataset_api.files import jpeg, mp4_bytes, png, voc_xml
from tests.s3_server import S3Server, s3_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def replicas(platform: Platform, s3: S3Server) -> AsyncIterator[Callable[[str], object]]:
    """`await start(name)`: (re)starts the dataset service as replica `name` on the S3 bucket (or on an
    `endpoint` of another S3 server)."""
    bucket = s3.new_bucket()
    saved = dict(platform.extra_env)

    async def start(name: str, endpoint: str | None = None) -> None:
        platform.stop_service("dataset")
        platform.extra_env.update(s3.env(f"s3://{bucket}/labelhive"))
        if endpoint is not None:
            platform.extra_env["AWS_ENDPOINT_URL"] = endpoint
        platform.extra_env["LABELHIVE_DATA_DIR"] = str(ROOT / "var" / "test-replicas" / unique(name))
        platform.start_service("dataset")
        await platform.wait_ready(f"{platform.service_url('dataset')}/readyz", "dataset")

    start.bucket = bucket  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        platform.stop_service("dataset")
        platform.extra_env.clear()
        platform.extra_env.update(saved)
        platform.start_service("dataset")
        await platform.wait_ready(f"{platform.service_url('dataset')}/readyz", "dataset")


def stored(s3: S3Server, bucket: str) -> set[str]:
    return {key.rsplit("/", 1)[1] for key in s3.contents(bucket)}


async def test_files_outlive_the_replica_that_stored_them(manager, client, replicas, s3):
    owner, _ = manager
    bucket = replicas.bucket
    await replicas("first")

    picture = png(40, 30)
    r = await owner.post("/picbed/", files={"img": ("a.png", picture, "image/png")})
    assert r.status_code == 200, r.text
    picture_url = r.json()["data"]["url"]
    video = mp4_bytes(6 * 1024 * 1024 + 321)  # past one part: a multipart upload, then a copy
    r = await owner.post("/video/", files={"video": ("clip.mp4", video, "video/mp4")})
    assert r.status_code == 200, r.text
    video_url = r.json()["data"]["url"]
    name = unique("s3set")
    r = await owner.post(
        "/data_module/create_dataset",
        files={"name": (None, name), "data_type": (None, "3"), "desc": (None, "d"), "label_type": (None, "1:scratch")},
    )
    assert r.status_code == 200, r.text
    dataset_id = int(r.json()["dataset_id"])
    image = jpeg()
    r = await owner.post(
        f"/data_module/upload_images/{name}",
        files=[
            ("upload_image_site", ("s.jpg", image, "image/jpeg")),
            ("label_file", ("s.xml", voc_xml("s.jpg", 64, 48, [("scratch", 1, 2, 30, 40)]), "text/xml")),
        ],
    )
    assert r.json()["err_no"] == 0, r.text
    assert len(stored(s3, bucket)) == 3  # the three files, and no temp object or unfinished upload

    await replicas("second")  # another process, another (empty) data dir, the same bucket

    assert (await client.get(picture_url)).content == picture
    part = await client.get(video_url, headers={"Range": "bytes=6291456-6291555"})
    assert part.status_code == 206 and part.content == video[6291456:6291556]
    assert part.headers["content-range"] == f"bytes 6291456-6291555/{len(video)}"
    tail = await client.get(video_url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == video[-10:]
    refused = await client.get(video_url, headers={"Range": f"bytes={len(video)}-"})
    assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{len(video)}"

    export = await owner.get(f"/dataset/export/{dataset_id}", params={"format": "voc"})
    assert export.status_code == 200, export.text
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        assert [archive.read(n) for n in archive.namelist() if n.endswith(".jpg")] == [image]

    before = stored(s3, bucket)
    assert (await owner.delete(picture_url)).json()["code"] == 0
    assert len(before - stored(s3, bucket)) == 1  # the last reference went, so did the bytes
    assert (await client.get(picture_url)).status_code == 404


async def test_storage_down_is_a_503_not_a_crash(manager, client, replicas):
    owner, _ = manager
    await replicas("healthy")
    r = await owner.post("/picbed/", files={"img": ("b.png", png(20, 20), "image/png")})
    assert r.status_code == 200, r.text
    url = r.json()["data"]["url"]

    await replicas("cut-off", endpoint=f"http://127.0.0.1:{free_port()}")  # starts although nothing answers

    r = await client.get(url)
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (503, 1002, "external error")
    r = await owner.post("/picbed/", files={"img": ("c.png", png(20, 20), "image/png")})
    assert (r.status_code, r.json()["code"]) == (503, 1002)
    assert "127.0.0.1" not in r.text  # where the storage is stays in the log
