"""Through the gateway: turned photos are turned back or refused, never enrolled as a template that matches
nobody; EXIF orientation is honoured; enrolment (002, face datasets, face binding) and face login refuse a
tiny or blurred face and say why; a good photo still enrols."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageFilter

from tests.conftest import gateway_client, unique
from tests.face_api.conftest import new_collection, ok, search
from tests.helpers import eventually, user_client

# Refusals that say a face is unusable, in 002's `invalid_reason`.
UNUSABLE = {"no plausible face", "face too small", "face unclear", "face blurred", "face turned", "face tilted"}
# person_b_1.jpg: the eyes are 132 px apart in a 716x900 photo.
EYES_PX = 132


def _encode(image: Image.Image, **save: object) -> str:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=92, **save)
    return base64.b64encode(out.getvalue()).decode()


def _open(photo_bytes: dict[str, bytes], name: str) -> Image.Image:
    return Image.open(io.BytesIO(photo_bytes[name])).convert("RGB")


def turned(photo_bytes: dict[str, bytes], name: str, degrees: int) -> str:
    """The photo turned counter-clockwise, its pixels really turned and no EXIF tag saying so."""
    return _encode(_open(photo_bytes, name).rotate(degrees, expand=True))


def tiny(photo_bytes: dict[str, bytes]) -> str:
    """person_b_1 scaled down so that the face is about 24 px wide (eyes 11 px apart)."""
    image = _open(photo_bytes, "person_b_1.jpg")
    factor = 11 / EYES_PX
    return _encode(image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS))


def blurred(photo_bytes: dict[str, bytes]) -> str:
    """person_b_1 blurred as by a shaken camera: sigma 4 px in the aligned 112 px crop."""
    return _encode(_open(photo_bytes, "person_b_1.jpg").filter(ImageFilter.GaussianBlur(4 * EYES_PX / 35)))


async def test_turned_photos_are_recognised_or_refused_never_enrolled_blind(face, photos, photo_bytes):
    name = await new_collection(face, "turned")
    images, targets = [], []
    for person, source in (("macron", "person_a_2.jpg"), ("ardern", "person_b_1.jpg")):
        for degrees in (90, 180, 270):
            images.append(turned(photo_bytes, source, degrees))
            targets.append(f"{person}-{degrees}")
    answer = await ok(face, "/face/insert", {"collection_name": name, "face_image": images, "target_id": targets})
    invalid = answer["invalid"]["message"]
    assert set(invalid["invalid_reason"]) <= UNUSABLE, invalid
    enrolled = {t for i, t in enumerate(targets) if i not in invalid["invalid_index"]}
    assert answer["success_num"] == len(enrolled)

    # Every template enrolled from a turned photo is its person's: their upright photo finds it.
    for person, query in (("macron", "person_a_1.jpg"), ("ardern", "person_b_2.jpg")):
        results = {r["result"]: r["score"] for r in await search(face, name, photos[query], top_k=10)}
        for target in enrolled:
            if target.startswith(person):
                assert results[target] > 0.5, (query, target, results)
            else:
                assert results[target] < 0.5, (query, target, results)
    assert enrolled, "YuNet finds these faces once turned back: they should be recognised, not refused"

    # Compare and search turn a sideways photo back too.
    for degrees in (90, 180):
        body = {"face_image1": turned(photo_bytes, "person_a_2.jpg", degrees), "face_image2": photos["person_a_1.jpg"]}
        assert (await ok(face, "/face/compare", body))["score"] > 0.5, degrees
        assert (await search(face, name, turned(photo_bytes, "person_b_2.jpg", degrees), 1))[0]["result"].startswith(
            "ardern"
        )


async def test_exif_orientation_is_honoured(face, photos, photo_bytes):
    name = await new_collection(face, "exif")
    upright = _open(photo_bytes, "person_b_1.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to display": the pixels are stored turned the other way
    stored = _encode(upright.transpose(Image.Transpose.ROTATE_90), exif=exif)
    answer = await ok(face, "/face/insert", {"collection_name": name, "face_image": [stored], "target_id": ["ardern"]})
    assert answer["success_num"] == 1 and answer["invalid"]["invalid_num"] == 0, answer
    [best] = await search(face, name, photos["person_b_2.jpg"], top_k=1)
    assert best["result"] == "ardern" and best["score"] > 0.5, best


async def test_tiny_and_blurred_faces_are_refused_at_enrolment_with_their_reason(face, photos, photo_bytes):
    name = await new_collection(face, "quality")
    images = [photos["person_b_1.jpg"], tiny(photo_bytes), blurred(photo_bytes)]
    answer = await ok(
        face, "/face/insert", {"collection_name": name, "face_image": images, "target_id": ["good", "tiny", "blurred"]}
    )
    assert answer["success_num"] == 1, answer  # the good photo still enrols
    message = answer["invalid"]["message"]
    assert message["invalid_id"] == ["tiny", "blurred"] and message["invalid_index"] == [1, 2]
    assert message["invalid_reason"] == ["face too small", "face blurred"], message
    assert "px between the eyes, at least 20 needed" in message["invalid_detail"][0], message
    assert "sharpness" in message["invalid_detail"][1], message
    [status] = (await ok(face, "/collection/status", {"collection_name": [name]}))["status"]
    assert status["feature_num"] == 1

    # Update never replaces a good template with a useless one.
    answer = await ok(
        face, "/face/update", {"collection_name": name, "face_image": [blurred(photo_bytes)], "target_id": ["good"]}
    )
    assert answer["success_num"] == 0 and answer["invalid"]["message"]["invalid_reason"] == ["face blurred"]
    [best] = await search(face, name, photos["person_b_2.jpg"], top_k=1)
    assert best["result"] == "good" and best["score"] > 0.5

    # Search and compare take such faces (the gate is for enrolment): they answer, they do not refuse.
    assert isinstance(
        (await ok(face, "/face/compare", {"face_image1": tiny(photo_bytes), "face_image2": photos["person_b_2.jpg"]}))[
            "score"
        ],
        float,
    )


async def test_face_binding_and_face_login_refuse_an_unusable_face_with_the_reason(platform, mailbox, photo_bytes):
    client, _ = await user_client(platform, mailbox)
    try:
        for image, words in ((tiny(photo_bytes), "face too small"), (blurred(photo_bytes), "face blurred")):
            r = await client.post("/user/face_recognition", json={"image": image})
            assert r.status_code == 401 and r.json()["code"] == 60, r.text
            assert r.json()["message"] == "face unrecognized" and words in r.json()["data"], r.text
        # Face login applies the gate before it looks for anyone (no good face is bound here: the users
        # collection is shared by the whole test session).
        async with gateway_client(platform) as anonymous:
            r = await anonymous.post("/user/face_recognition_login", json={"image": blurred(photo_bytes)})
            assert r.status_code == 401 and r.json()["code"] == 60 and "face blurred" in r.json()["data"], r.text
    finally:
        await client.aclose()


async def test_face_datasets_reject_a_tiny_face(platform, mailbox, db, photo_bytes):
    client, _ = await user_client(platform, mailbox)
    name = unique("quality")
    r = await client.post(
        "/data_module/create_dataset",
        files={
            "name": (None, name),
            "data_type": (None, "2"),
            "desc": (None, "faces"),
            "label_type": (None, "1:ardern"),
        },
    )
    assert r.json()["err_no"] == 0, r.text
    dataset_id = int(r.json()["dataset_id"])
    uploads = (("good.jpg", photo_bytes["person_b_1.jpg"]), ("tiny.jpg", base64.b64decode(tiny(photo_bytes))))
    for filename, data in uploads:
        r = await client.post(
            f"/data_module/upload_image/{name}",
            data={"status": "1:ardern"},
            files={"upload_image_site": (filename, data, "image/jpeg")},
        )
        assert r.json()["err_no"] == 0, r.text
    await client.aclose()

    async def enrolments_settled() -> list | None:
        rows = await db.fetch(
            "SELECT status, last_error FROM dataset.enrolment_outbox WHERE dataset_id = $1 ORDER BY id", dataset_id
        )
        return rows if len(rows) == 2 and all(row["status"] != "queued" for row in rows) else None

    rows = await eventually(enrolments_settled, timeout=30, what="two settled enrolments")
    assert [row["status"] for row in rows] == ["done", "rejected"], rows
    assert "face_too_small" in rows[1]["last_error"], rows[1]["last_error"]
