"""Face datasets: labelled images reach the face service through the outbox, whenever it is there."""

from __future__ import annotations

from tests.conftest import unique
from tests.dataset_api.files import jpeg
from tests.helpers import eventually


async def _outbox(db, dataset_id: int) -> list[dict]:
    rows = await db.fetch(
        "SELECT target_id, status, attempts, last_error FROM dataset.enrolment_outbox "
        "WHERE dataset_id = $1 ORDER BY id",
        dataset_id,
    )
    return [dict(r) for r in rows]


async def test_enrolments_wait_for_the_face_service(manager, platform, db):
    client, _ = manager
    name = unique("faces")
    r = await client.post(
        "/data_module/create_dataset",
        files={
            "name": (None, name),
            "data_type": (None, "2"),
            "desc": (None, "staff"),
            "label_type": (None, "1:alice"),
        },
    )
    dataset_id = int(r.json()["dataset_id"])

    # The face service is down: the upload succeeds and the enrolment waits, retried with back-off.
    platform.stop_service("face")
    try:
        r = await client.post(
            f"/data_module/upload_image/{name}",
            data={"status": "1:alice"},
            files={"upload_image_site": ("alice.jpg", jpeg(80, 80), "image/jpeg")},
        )
        assert r.json()["err_no"] == 0, r.text

        async def attempted():
            rows = await _outbox(db, dataset_id)
            return rows if rows and rows[0]["attempts"] >= 1 else None

        rows = await eventually(attempted, what="an attempted enrolment")
        assert rows[0]["status"] == "queued" and "unavailable" in rows[0]["last_error"]
    finally:
        platform.start_service("face")
        await platform.wait_ready(f"{platform.service_url('face')}/readyz", "face")

    # Back, it gets the enrolment: this picture holds no face, so the face service refuses it for
    # good (tests/face_api covers enrolments that succeed).
    async def settled():
        rows = await _outbox(db, dataset_id)
        return rows if rows[0]["status"] != "queued" else None

    rows = await eventually(settled, timeout=60, what="the enrolment settled")
    assert rows[0]["status"] == "rejected" and "no_face" in rows[0]["last_error"]
