"""Hostile files: each is refused with a 4xx that names it and says why, and leaves no trace (no row, no
stored bytes, no temp file), also when good files came before it in the same upload."""

from __future__ import annotations

import pytest

from tests.conftest import unique
from tests.dataset_api.files import (
    billion_laughs,
    decompression_bomb,
    jpeg,
    stored_objects,
    text_as_png,
    truncated_jpeg,
    voc_xml,
    zip_bomb,
    zip_of,
    zip_slip,
)


async def _counts(db) -> tuple[int, ...]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM dataset.images) AS images, (SELECT count(*) FROM dataset.media) AS media, "
        "(SELECT count(*) FROM dataset.texts) AS texts, (SELECT count(*) FROM dataset.objects) AS objects, "
        "(SELECT count(*) FROM dataset.datasets WHERE document = '003') AS archives"
    )
    return tuple(row)


@pytest.fixture
async def no_trace(db, backing):
    """Asserts at the end of the test that the database and the object store are as they were."""
    before = (await _counts(db), stored_objects(backing.namespace))
    yield
    assert (await _counts(db), stored_objects(backing.namespace)) == before


@pytest.fixture(scope="module")
async def detection(manager):
    client, _ = manager
    name = unique("hostile")
    r = await client.post(
        "/data_module/create_dataset",
        files={"name": (None, name), "data_type": (None, "3"), "desc": (None, "d"), "label_type": (None, "1:cat")},
    )
    assert r.status_code == 200, r.text
    return name


def _good_pair(name: str = "good") -> list:
    return [
        ("upload_image_site", (f"{name}.jpg", jpeg(), "image/jpeg")),
        ("label_file", (f"{name}.xml", voc_xml(f"{name}.jpg", 64, 48, [("cat", 1, 1, 9, 9)]), "application/xml")),
    ]


@pytest.mark.parametrize(
    ("file_name", "content", "reason"),
    [
        ("bomb.png", decompression_bomb(8_000), "exceeds the limit of 50000000 pixels"),  # our cap
        ("huge.png", decompression_bomb(30_000), "decompression bomb"),  # past Pillow's own
        ("evil.png", text_as_png(), "not an image"),
        ("cut.jpg", truncated_jpeg(), "truncated"),
    ],
    ids=["bomb", "huge-bomb", "text-as-png", "truncated-jpeg"],
)
async def test_bad_images_in_000_uploads(manager, detection, no_trace, file_name, content, reason):
    client, _ = manager
    r = await client.post(
        f"/data_module/upload_images/{detection}",
        data={"status": "default"},
        files=[
            ("upload_image_site", ("fine.jpg", jpeg(), "image/jpeg")),
            ("upload_image_site", (file_name, content, "image/png")),
        ],
    )
    body = r.json()
    assert r.status_code == 400 and body["err_no"] == "4103", r.text
    assert file_name in body["err_desc"] and reason in body["err_desc"], body


async def test_xml_entity_bomb(manager, detection, no_trace):
    client, _ = manager
    r = await client.post(
        f"/data_module/upload_images/{detection}",
        files=[
            *_good_pair(),
            ("upload_image_site", ("lol.jpg", jpeg(), "image/jpeg")),
            ("label_file", ("lol.xml", billion_laughs(), "application/xml")),
        ],
    )
    body = r.json()
    assert r.status_code == 400 and body["err_no"] == "4103", r.text
    assert "lol.xml" in body["err_desc"] and "forbidden XML" in body["err_desc"]


async def test_external_entity_is_refused(manager, detection, no_trace):
    client, _ = manager
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<annotation><filename>&x;</filename></annotation>"
    )
    r = await client.post(
        f"/data_module/upload_images/{detection}",
        files=[
            ("upload_image_site", ("x.jpg", jpeg(), "image/jpeg")),
            ("label_file", ("x.xml", xxe, "application/xml")),
        ],
    )
    assert r.status_code == 400 and "x.xml" in r.json()["err_desc"]


@pytest.mark.parametrize(
    ("archive", "status", "reason"),
    [
        (zip_slip(), 400, "escapes"),
        (zip_bomb(), 413, "more than"),
        (b"PK\x03\x04 this is no zip", 400, "zip"),
    ],
    ids=["zip-slip", "zip-bomb", "not-a-zip"],
)
async def test_hostile_archives(manager, no_trace, archive, status, reason):
    client, _ = manager
    r = await client.post(
        "/task/upload_data", params={"data_type": "text"}, files={"file": ("data.zip", archive, "application/zip")}
    )
    body = r.json()
    assert r.status_code == status and body["code"] == 1005, r.text
    assert reason in body["message"], body


async def test_bad_image_after_good_ones_in_an_archive(manager, no_trace):
    """1.jpg is stored while 2.jpg is read: the refusal of 2.jpg removes it again."""
    client, _ = manager
    archive = zip_of({"1.jpg": jpeg(), "2.jpg": truncated_jpeg(), "3.jpg": jpeg()})
    r = await client.post(
        "/task/upload_data", params={"data_type": "image"}, files={"file": ("data.zip", archive, "application/zip")}
    )
    body = r.json()
    assert r.status_code == 400 and body["code"] == 1005, r.text
    assert "2.jpg" in body["message"] and "truncated" in body["message"]


async def test_bad_text_in_an_archive(manager, no_trace):
    client, _ = manager
    archive = zip_of({"1.txt": "第一题".encode(), "2.txt": "第二题".encode("gbk")})
    r = await client.post(
        "/task/upload_data", params={"data_type": "text"}, files={"file": ("data.zip", archive, "application/zip")}
    )
    assert r.status_code == 400 and "2.txt" in r.json()["message"], r.text


@pytest.mark.parametrize(
    ("file_name", "content"),
    [("evil.png", text_as_png()), ("cut.jpg", truncated_jpeg()), ("bomb.png", decompression_bomb())],
    ids=["text-as-png", "truncated-jpeg", "bomb"],
)
async def test_bad_images_on_the_image_bed(manager, no_trace, file_name, content):
    client, _ = manager
    r = await client.post("/picbed/", files={"img": (file_name, content, "image/png")})
    assert r.status_code == 400 and r.json()["code"] == 1005 and file_name in r.json()["message"], r.text


async def test_text_is_not_a_video(manager, no_trace):
    client, _ = manager
    r = await client.post("/video/", files={"video": ("clip.mp4", b"<html>not a video</html>" * 100, "video/mp4")})
    assert r.status_code == 400 and "clip.mp4" in r.json()["message"], r.text


async def test_oversized_upload_is_refused(manager, no_trace):
    client, _ = manager
    big = b"\xff\xd8\xff" + bytes(21 * 1024 * 1024)  # past the 20 MiB image cap
    r = await client.post("/picbed/", files={"img": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and r.json()["code"] == 1005, r.text
    assert "limit" in r.json()["message"]


async def test_oversized_chunked_upload_is_refused(manager, no_trace):
    """No Content-Length to go by: the body is counted as it arrives."""
    client, _ = manager
    boundary = "b0undary"

    async def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="img"; filename="big.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        for _ in range(22):
            yield bytes(1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    r = await client.post(
        "/picbed/", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert r.status_code == 413 and r.json()["code"] == 1005, r.text
