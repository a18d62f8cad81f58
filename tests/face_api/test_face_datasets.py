"""Face datasets (000): labelled photos uploaded to the dataset service reach the face service through its
outbox, as vectors of the label in the dataset's own collection (its owner's), once each."""

from __future__ import annotations

import base64

import httpx

from shared.identity import CALLER_HEADER, sign_caller
from tests.conftest import unique
from tests.face_api.conftest import ok
from tests.helpers import eventually, user_client


async def _outbox(db, dataset_id: int) -> list[dict]:
    rows = await db.fetch(
        "SELECT id, target_id, object_key, status, last_error FROM dataset.enrolment_outbox "
        "WHERE dataset_id = $1 ORDER BY id",
        dataset_id,
    )
    return [dict(r) for r in rows]


async def _features(db, collection: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT f.target_id, count(*) AS n FROM face.features f JOIN face.collections c "
        "ON c.id = f.collection_id WHERE c.kind = 'dataset' AND c.name = $1 GROUP BY f.target_id",
        collection,
    )
    return {r["target_id"]: r["n"] for r in rows}


async def test_labelled_uploads_are_enrolled_once(platform, mailbox, db, photos, photo_bytes, face):
    client, owner = await user_client(platform, mailbox)
    name = unique("staff")
    r = await client.post(
        "/data_module/create_dataset",
        files={
            "name": (None, name),
            "data_type": (None, "2"),
            "desc": (None, "staff faces"),
            "label_type": (None, "1:macron,2:ardern,3:nobody"),
        },
    )
    assert r.json()["err_no"] == 0, r.text
    dataset_id = int(r.json()["dataset_id"])
    url = f"/data_module/upload_image/{name}"
    for status, filename, data in [
        ("1:macron", "m1.jpg", photo_bytes["person_a_1.jpg"]),
        ("1:macron", "m2.jpg", photo_bytes["person_a_2.jpg"]),
        ("2:ardern", "a1.jpg", photo_bytes["person_b_1.jpg"]),
        ("3:nobody", "wall.jpg", base64.b64decode(photos["blank"])),
    ]:
        r = await client.post(url, data={"status": status}, files={"upload_image_site": (filename, data, "image/jpeg")})
        assert r.json()["err_no"] == 0, r.text
    await client.aclose()

    async def enrolments_settled() -> list | None:
        rows = await _outbox(db, dataset_id)
        return rows if len(rows) == 4 and all(row["status"] != "queued" for row in rows) else None

    rows = await eventually(enrolments_settled, timeout=30, what="four settled enrolments")
    assert [row["status"] for row in rows] == ["done", "done", "done", "rejected"], rows
    assert "no_face" in rows[3]["last_error"]
    collection = f"dataset-{dataset_id}"
    assert await _features(db, collection) == {"macron": 2, "ardern": 1}
    assert (
        await db.fetchval("SELECT owner_id FROM face.collections WHERE kind = 'dataset' AND name = $1", collection)
        == owner.user_id
    )

    # A retry of a delivered enrolment (its answer lost) stores nothing new.
    first = rows[0]
    body = {
        "collection": collection,
        "owner_id": owner.user_id,
        "target_id": first["target_id"],
        "image_key": first["object_key"],
        "image": photos["person_a_1.jpg"],
        "enrolment_id": first["id"],
    }
    async with httpx.AsyncClient(base_url=platform.service_url("face"), timeout=60) as direct:
        signed = {CALLER_HEADER: sign_caller("dataset", platform.secret)}
        r = await direct.post("/internal/datasets/enroll", json=body, headers=signed)
        assert r.status_code == 200 and r.json()["duplicate"] is True, r.text
        # The owner is part of the call: without it there is no collection to enrol into.
        r = await direct.post(
            "/internal/datasets/enroll", json={k: v for k, v in body.items() if k != "owner_id"}, headers=signed
        )
        assert r.status_code == 400 and "owner_id" in r.text, r.text
    assert await _features(db, collection) == {"macron": 2, "ardern": 1}

    # The dataset's collection is not one of 002's.
    listed = (await ok(face, "/collection/status", {"collection_name": []}))["status"]
    assert collection not in [entry["collection_name"] for entry in listed]
