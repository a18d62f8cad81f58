"""Detection through the gateway (document 004), and its records reaching the stats service once."""

from __future__ import annotations

import asyncio
import base64
import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from shared.detections import DetectionRecord, stream_key
from shared.redis import Keys
from tests.conftest import gateway_client, unique
from tests.fixtures.steel import steel_photo
from tests.helpers import admin_client, eventually, user_client


async def _search(client, **params) -> dict:
    r = await client.get("/api/data/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def _wait_for(client, name: str, count: int, timeout: float = 20) -> dict:
    async def found() -> dict | None:
        result = await _search(client, name=name, limit=100)
        return result if result["total"] >= count else None

    return await eventually(found, timeout=timeout, interval=0.2, what=f"{count} records of {name}")


async def test_detect_needs_credentials(client):
    r = await client.post("/api/detect", files=[("images", ("a.jpg", steel_photo(1), "image/jpeg"))])
    assert r.status_code == 401 and set(r.json()) == {"error", "details"}
    r = await client.get("/api/data/getRecent")
    assert r.status_code == 401 and set(r.json()) == {"error", "details"}


async def test_detect_documented_400s(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    r = await client.post("/api/detect", data={"other": "x"})
    assert r.status_code == 400 and r.json()["error"] == "No images provided"
    r = await client.post(
        "/api/detect", files=[("images", ("notes.jpg", b"this is text, not a picture", "image/jpeg"))]
    )
    assert r.status_code == 400 and r.json()["error"] == "Invalid image data for notes.jpg" and r.json()["details"]
    truncated = steel_photo(2)[:500]
    r = await client.post(
        "/api/detect/",
        files=[
            ("images", ("good.jpg", steel_photo(3), "image/jpeg")),
            ("images", ("cut.jpg", truncated, "image/jpeg")),
        ],
    )
    assert r.status_code == 400 and r.json()["error"] == "Invalid image data for cut.jpg"
    await client.aclose()


async def test_single_and_batch_detection(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    r = await client.post("/api/detect", files=[("images", ("plate.jpg", steel_photo(4), "image/jpeg"))])
    assert r.status_code == 200, r.text
    [result] = r.json()
    assert set(result) == {"defect_count", "dice", "labels", "name", "processing_time", "result_image"}
    assert result["name"] == "plate.jpg"
    assert result["defect_count"] >= 1 and "scratches" in result["labels"]
    assert set(result["labels"]) <= {"inclusion", "patches", "scratches"}
    assert 0 <= result["dice"] <= 1 and result["processing_time"] > 0
    drawn = Image.open(io.BytesIO(base64.b64decode(result["result_image"])))
    assert drawn.size == (200, 200)

    files = [
        ("images", (f"b{i}.jpg", steel_photo(10 + i, size=(160 + 40 * i, 120 + 40 * i)), "image/jpeg"))
        for i in range(3)
    ]
    r = await client.post("/api/detect/", files=files)
    assert [x["name"] for x in r.json()] == ["b0.jpg", "b1.jpg", "b2.jpg"]
    sizes = [Image.open(io.BytesIO(base64.b64decode(x["result_image"]))).size for x in r.json()]
    assert sizes == [(160, 120), (200, 160), (240, 200)]
    clean = await client.post(
        "/api/detect", files=[("images", ("clean.png", steel_photo(5, scratch=False), "image/png"))]
    )
    assert clean.json()[0]["defect_count"] == 0 and clean.json()[0]["labels"] == []
    await client.aclose()


async def test_an_api_key_opens_detect_and_the_data_api(platform):
    admin = await admin_client(platform)
    key = (await admin.post("/user/api_keys", json={"name": unique("line-")})).json()["data"]["key"]
    async with gateway_client(platform, headers={"X-API-Key": key}) as machine:
        r = await machine.post("/api/detect", files=[("images", ("k.jpg", steel_photo(6), "image/jpeg"))])
        assert r.status_code == 200
        assert (await machine.get("/api/data/getRecent", params={"limit": 1})).status_code == 200
    await admin.aclose()


async def test_records_reach_stats_and_the_data_api_answers(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    tag = unique("rec")
    files = [("images", (f"{tag}-{i}.jpg", steel_photo(20 + i), "image/jpeg")) for i in range(3)]
    results = (await client.post("/api/detect", files=files)).json()
    found = await _wait_for(client, tag, 3)
    assert found["total"] == 3
    entry = found["data"][0]
    assert set(entry) >= {"figId", "name", "resFig", "date", "time", "label", "num", "dice"}
    today = datetime.now(UTC).date().isoformat()
    assert entry["date"] == today

    figure = await client.get(f"/api/data/figure/{entry['figId']}")
    assert figure.status_code == 200 and figure.headers["content-type"] == "image/jpeg"
    assert (await client.get("/api/data/figure/999999999")).status_code == 404

    recent = (await client.get("/api/data/getRecent")).json()
    assert len(recent) <= 120 and {f"{tag}-{i}.jpg" for i in range(3)} <= {r["name"] for r in recent}
    assert len((await client.get("/api/data/getRecent", params={"limit": 2})).json()) == 2

    num = results[0]["defect_count"]
    by_num = await _search(client, name=tag, num=num)
    assert by_num["total"] == sum(1 for r in results if r["defect_count"] == num)
    assert (await _search(client, name=tag, startDate=today, endDate=today))["total"] == 3
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    assert (await _search(client, name=tag, endDate=yesterday))["total"] == 0
    paged = await _search(client, name=tag, limit=2, page=2)
    assert paged["total"] == 3 and len(paged["data"]) == 1
    assert (await _search(client, name=tag.upper()))["total"] == 3  # fuzzy, case-insensitive
    assert (await _search(client, name="%"))["total"] == 0  # "%" is a character, not a wildcard

    days = (await client.get("/api/data/statByDate")).json()
    assert len(days) == 15 and days[-1]["stat_date"] == today
    assert days[-1]["record_count"] >= 3 and days[-1]["total_num"] >= sum(r["defect_count"] for r in results)
    one = (await client.get("/api/data/statByDate", params={"startDate": today, "endDate": today})).json()
    assert one[0]["record_count"] == days[-1]["record_count"]
    page = (await client.get("/api/data/getPaginated", params={"limit": 5, "page": 1})).json()
    assert len(page) == 5 or len(page) == len(recent)
    await client.aclose()


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/data/statByDate", {"startDate": "2024-13-45"}),
        ("/api/data/statByDate", {"startDate": "2024-05-02", "endDate": "2024-05-01"}),
        ("/api/data/search", {"endDate": "yesterday"}),
        ("/api/data/search", {"num": "many"}),
        ("/api/data/search", {"limit": 0}),
        ("/api/data/search", {"page": -1}),
        ("/api/data/getRecent", {"limit": "abc"}),
        ("/api/data/getRecent", {"limit": 100000}),
        ("/api/data/getPaginated", {"page": 0}),
        ("/api/data/statByDate", {"startDate": 0}),  # a number of seconds is no date
        ("/api/data/statByDate", {"endDate": "1700000000"}),
        ("/api/data/search", {"startDate": "0"}),
        ("/api/data/search", {"endDate": "2024-5-1"}),
    ],
)
async def test_bad_parameters_are_400(platform, mailbox, path, params):
    client, _ = await user_client(platform, mailbox)
    r = await client.get(path, params=params)
    assert r.status_code == 400 and set(r.json()) == {"error", "details"}, r.text
    await client.aclose()


async def test_records_arrive_exactly_once_across_a_stats_outage(platform, mailbox, redis, backing):
    client, _ = await user_client(platform, mailbox)
    tag = unique("burst")
    platform.stop_service("stats")
    try:

        async def detect(i: int) -> int:
            files = [("images", (f"{tag}-{i}.jpg", steel_photo(100 + i), "image/jpeg"))]
            return (await client.post("/api/detect", files=files)).status_code

        assert await asyncio.gather(*(detect(i) for i in range(12))) == [200] * 12
    finally:
        platform.start_service("stats")
        await platform.wait_ready(f"{platform.service_url('stats')}/readyz", "stats")
    found = await _wait_for(client, tag, 12)
    assert found["total"] == 12

    # A redelivered record (same id) is stored once.
    stream = stream_key(Keys(backing.namespace))
    record = DetectionRecord(
        unique("dup"),
        f"{tag}-dup.jpg",
        datetime.now(UTC).isoformat(),
        ["patches"],
        1,
        0.9,
        0.01,
        base64.b64encode(steel_photo(7)).decode(),
    )
    for _ in range(3):
        await redis.xadd(stream, record.to_fields())
    await _wait_for(client, f"{tag}-dup", 1)
    await asyncio.sleep(1)
    assert (await _search(client, name=tag, limit=100))["total"] == 13
    await client.aclose()


async def test_a_missing_model_is_a_clear_503(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    platform.stop_service("detect")
    platform.extra_env["LABELHIVE_MODEL_PATH"] = "/nonexistent/defect_seg.onnx"
    try:
        platform.start_service("detect")
        await platform.wait_ready(f"{platform.service_url('detect')}/readyz", "detect")
        r = await client.post("/api/detect", files=[("images", ("a.jpg", steel_photo(8), "image/jpeg"))])
        assert r.status_code == 503
        assert r.json()["error"] == "the defect model is not installed"
        assert "make train-detect" in r.json()["details"]
    finally:
        platform.stop_service("detect")
        del platform.extra_env["LABELHIVE_MODEL_PATH"]
        platform.start_service("detect")
        await platform.wait_ready(f"{platform.service_url('detect')}/readyz", "detect")
    await client.aclose()


async def test_dashboard_page_is_self_contained(client):
    page = await client.get("/api/data/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/data/statByDate" in page.text and "<script src" not in page.text


async def test_the_schema_declares_what_binary_routes_answer(client):
    """A client generated from /openapi.json expects the content types the routes really send."""
    paths = (await client.get("/openapi.json")).json()["paths"]

    def declared(path: str) -> set[str]:
        return set(paths[path]["get"]["responses"]["200"]["content"])

    assert declared("/api/data/dashboard") == {"text/html"}
    assert declared("/api/data/figure/{fig_id}") == {"image/jpeg"}
    assert declared("/task/get_batch_data/{task_id}") == {"application/zip"}
    assert "image/jpeg" in declared("/picbed/{name}") and "application/json" not in declared("/picbed/{name}")
    assert "video/mp4" in declared("/video/{name}") and "application/json" not in declared("/video/{name}")
    assert declared("/review/download/{task_id}") == {"text/csv"}
