"""Document 003's image bed and media bed: URLs, ownership, shared bytes, HTTP ranges."""

from __future__ import annotations

import hashlib

from tests.dataset_api.files import mp4_bytes, objects_dir, png, stored_objects


def _object_path(namespace: str, data: bytes):
    key = hashlib.sha256(data).hexdigest()
    return objects_dir(namespace) / key[:2] / key[2:4] / key


async def test_picbed(manager, other_manager, client, backing):
    owner, _ = manager
    image = png(40, 30)
    r = await owner.post("/picbed/", files={"img": ("photo.png", image, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["code"], body["message"]) == (0, "Succeed")
    url = body["data"]["url"]
    assert url.startswith("/picbed/") and url.endswith(".png")

    picture = await client.get(url)  # reading needs no session
    assert picture.status_code == 200 and picture.content == image
    assert picture.headers["content-type"] == "image/png" and picture.headers["x-content-type-options"] == "nosniff"
    head = await client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(image)) and head.content == b""

    missing = await client.get("/picbed/AAAAAAAAAAAAAAAAAAAAAA.png")
    assert (missing.status_code, missing.json()) == (404, {"code": 18, "message": "picture not found", "data": {}})
    assert (await client.get("/picbed/..%2F..%2Fetc%2Fpasswd")).status_code == 404

    r = await other_manager[0].delete(url)
    assert (r.status_code, r.json()["code"]) == (400, 1006)
    assert (await client.delete(url)).status_code == 401
    r = await owner.delete(url)
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (200, 0, "Succeed")
    assert (await client.get(url)).json()["code"] == 18
    r = await owner.delete(url)
    assert (r.status_code, r.json()) == (404, {"code": 18, "message": "picture not found", "data": {}})
    assert not _object_path(backing.namespace, image).exists()
    assert (await client.post("/picbed/", files={"img": ("p.png", image, "image/png")})).status_code == 401


async def test_same_bytes_two_urls(manager, other_manager, client, backing, db):
    image = png(20, 20)
    first = (await manager[0].post("/picbed/", files={"img": ("a.png", image, "image/png")})).json()["data"]["url"]
    second = (await other_manager[0].post("/picbed/", files={"img": ("b.png", image, "image/png")})).json()["data"][
        "url"
    ]
    assert first != second
    path = _object_path(backing.namespace, image)
    key = path.name
    assert await db.fetchval("SELECT refcount FROM dataset.objects WHERE key = $1", key) == 2

    assert (await manager[0].delete(first)).json()["code"] == 0
    assert (await client.get(first)).status_code == 404
    assert (await client.get(second)).content == image  # the other URL still has its bytes
    assert path.exists() and await db.fetchval("SELECT refcount FROM dataset.objects WHERE key = $1", key) == 1

    assert (await other_manager[0].delete(second)).json()["code"] == 0
    assert not path.exists() and await db.fetchval("SELECT count(*) FROM dataset.objects WHERE key = $1", key) == 0


async def test_video_ranges(manager, other_manager, client, backing):
    owner, _ = manager
    video = mp4_bytes(3 * 1024 * 1024 + 123)
    before = stored_objects(backing.namespace)
    r = await owner.post("/video/", files={"video": ("clip.mp4", video, "video/mp4")})
    assert r.status_code == 200, r.text
    assert (r.json()["code"], r.json()["message"]) == (0, "succeed")
    url = r.json()["data"]["url"]
    assert url.startswith("/video/") and url.endswith(".mp4")
    assert len(stored_objects(backing.namespace) - before) == 1

    whole = await client.get(url)
    assert whole.status_code == 200 and whole.content == video
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/mp4"
    size = len(video)
    for header, start, end in [
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, size),
        ("bytes=-500", size - 500, size),
        (f"bytes={size - 10}-{size + 999}", size - 10, size),
    ]:
        part = await client.get(url, headers={"Range": header})
        assert part.status_code == 206, (header, part.text)
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert part.content == video[start:end] and part.headers["content-length"] == str(end - start)
    for header in (f"bytes={size}-", "bytes=-0"):
        refused = await client.get(url, headers={"Range": header})
        assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{size}"
        assert refused.json()["code"] == 1005
    # Malformed or multi-range headers get the whole file; so does an If-Range for another version.
    assert (await client.get(url, headers={"Range": "bytes=5-1"})).status_code == 200
    stale = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and len(stale.content) == size
    etag = whole.headers["etag"]
    assert (await client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})).status_code == 206

    missing = await client.get("/video/AAAAAAAAAAAAAAAAAAAAAA.mp4")
    assert (missing.status_code, missing.json()) == (404, {"code": 18, "message": "video not found", "data": {}})
    assert (await other_manager[0].delete(url)).status_code == 400
    r = await owner.delete(url)
    assert (r.status_code, r.json()) == (200, {"code": 0, "message": "succeed", "data": {}})
    assert (await owner.delete(url)).json() == {"code": 18, "message": "video not found", "data": {}}
    assert stored_objects(backing.namespace) == before


async def test_video_formats_and_errors(manager, client):
    owner, _ = manager
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(200)
    r = await owner.post("/video", files={"video": ("song.mp3", id3, "audio/mpeg")})
    assert r.status_code == 200 and r.json()["data"]["url"].endswith(".mp3"), r.text
    assert (await client.get(r.json()["data"]["url"])).headers["content-type"] == "audio/mpeg"
    r = await owner.post("/video/", files={"other": ("x.mp4", mp4_bytes(100), "video/mp4")})
    assert r.status_code == 400 and "video" in r.json()["message"]
    r = await owner.post("/video/", files={"video": ("x.mp4", b"", "video/mp4")})
    assert r.status_code == 400
    r = await owner.post("/video/", content=b"raw", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and "multipart" in r.json()["message"]
    assert (await client.post("/video/", files={"video": ("x.mp4", mp4_bytes(100), "video/mp4")})).status_code == 401


async def test_api_keys_act_for_no_user_here(admin, client):
    key = (await admin.post("/user/api_keys", json={"name": "dataset-test"})).json()["data"]["key"]
    headers = {"X-API-Key": key}
    # Outside the AI routes a key counts as no credential at all (shared/access.py).
    r = await client.post("/picbed/", files={"img": ("p.png", png(), "image/png")}, headers=headers)
    assert r.status_code == 401
    r = await client.get("/dataset/export/1", headers=headers)
    assert r.status_code == 401
    r = await client.get("/dataset/list", headers=headers)
    assert r.status_code == 401 and set(r.json()) == {"response"}
