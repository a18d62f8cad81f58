"""Face datasets: labelled images reach the face service through the outbox, whenever it is there."""

from __future__ import annotations

import asyncio
import base64

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import unique
from tests.dataset_api.fake_service import caller_of, port_for, serving
from tests.dataset_api.files import jpeg


async def _outbox(db, dataset_id: int) -> list[dict]:
    rows = await db.fetch("SELECT target_id, status, attempts, last_error FROM dataset.enrolment_outbox "
                          "WHERE dataset_id = $1 ORDER BY id", dataset_id)
    return [dict(r) for r in rows]


async def _until(check, timeout: float = 10):
    for _ in range(int(timeout / 0.1)):
        if result := await check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_enrolments_wait_for_the_face_service(manager, platform, db):
    port = port_for(platform, "face")
    client, _ = manager
    name = unique("faces")
    r = await client.post("/data_module/create_dataset", files={
        "name": (None, name), "data_type": (None, "2"), "desc": (None, "staff"),
        "label_type": (None, "1:alice,2:bob,3:noface")})
    dataset_id = int(r.json()["dataset_id"])
    url = f"/data_module/upload_image/{name}"

    # The face service is down: the upload succeeds and the enrolment waits, retried with back-off.
    alice = jpeg(80, 80)
    r = await client.post(url, data={"status": "1:alice"},
                          files={"upload_image_site": ("alice.jpg", alice, "image/jpeg")})
    assert r.json()["err_no"] == 0, r.text

    async def attempted():
        rows = await _outbox(db, dataset_id)
        return rows if rows and rows[0]["attempts"] >= 1 else None

    rows = await _until(attempted)
    assert rows[0]["status"] == "queued" and "unavailable" in rows[0]["last_error"]

    received = []

    async def enroll(request: Request) -> JSONResponse:
        body = await request.json()
        received.append((caller_of(request, platform), body))
        if body["target_id"] == "noface":
            return JSONResponse({"reason": "no_face", "detail": "no face found"}, status_code=422)
        return JSONResponse({"collection": body["collection"], "target_id": body["target_id"]})

    async with serving(Starlette(routes=[Route("/internal/datasets/enroll", enroll, methods=["POST"])]), port):
        bob = jpeg(80, 80)
        r = await client.post(url, data={"status": "appoint_table"}, files=[
            ("upload_image_site", ("bob.jpg", bob, "image/jpeg")),
            ("upload_image_site", ("wall.jpg", jpeg(), "image/jpeg")),
            ("table_site", ("t.txt", b"bob.jpg bob\nwall.jpg noface\n", "text/plain"))])
        assert r.json()["err_no"] == 0, r.text

        async def delivered():
            rows = await _outbox(db, dataset_id)
            return rows if [r["status"] for r in rows[1:]] == ["done", "rejected"] else None

        rows = await _until(delivered)
    assert rows[0]["status"] == "queued"  # still waiting out its back-off: not lost, not skipped
    assert "no_face" in rows[2]["last_error"]
    bob_call = next(body for _, body in received if body["target_id"] == "bob")
    assert bob_call["collection"] == f"dataset-{dataset_id}"
    assert base64.b64decode(bob_call["image"]) == bob and len(bob_call["image_key"]) == 64
    assert {caller for caller, _ in received} == {"dataset"}
