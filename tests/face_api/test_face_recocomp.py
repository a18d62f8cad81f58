"""Document 002 through the gateway, with real photos: every endpoint, every documented answer and error."""

from __future__ import annotations

import asyncio
import base64
import json
import re

from tests.conftest import gateway_client, unique
from tests.face_api.conftest import PREFIX, call, new_collection, ok, refused, search
from tests.helpers import user_client

ENDPOINTS = (
    "/version",
    "/license",
    "/create/collection",
    "/clear/collection",
    "/delete/collection",
    "/collection/status",
    "/face/insert",
    "/face/update",
    "/delete/id",
    "/face/search",
    "/face/compare",
)
CTIME = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
    r"\d\d:\d\d:\d\d \d{4}$"
)


async def test_every_endpoint_needs_a_session_or_an_api_key(client):
    for path in ENDPOINTS:
        for method in ("GET", "POST"):
            response = await call(client, path, {"collection_name": "face_col"}, method)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["err_code"] == 401 and response.json()["err_msg"]


async def test_a_session_works_too(platform, mailbox):
    client, _ = await user_client(platform, mailbox)
    assert (await ok(client, "/version", method="GET"))["version"].startswith("V")
    await client.aclose()


async def test_version_and_license(face):
    for method in ("GET", "POST"):
        assert re.fullmatch(r"V\d+\.\d+\.\d+", (await ok(face, "/version", method=method))["version"])
        assert await ok(face, "/license", method=method) == {"err_code": 0, "status": "Authorized"}
    assert (await face.get(PREFIX + "/version/")).json()["err_code"] == 0  # a trailing slash is the same


async def test_collection_lifecycle(face):
    name = unique("face_col_")
    assert await ok(face, "/create/collection", {"collection_name": name}) == {
        "err_code": 0,
        "status": "Create collection successfully!",
    }
    await refused(face, "/create/collection", {"collection_name": name}, 1004, 409)
    for bad in ["", "face col", "_users", "dataset/1", "x" * 65, 123, None, ["face_col"]]:
        await refused(face, "/create/collection", {"collection_name": bad}, 1003, 400)
    await refused(face, "/create/collection", {}, 400, 400)

    [entry] = (await ok(face, "/collection/status", {"collection_name": [name]}))["status"]
    assert set(entry) == {"collection_name", "create_time", "update_time", "feature_num"}
    assert entry["collection_name"] == name and entry["feature_num"] == 0
    assert CTIME.match(entry["create_time"]) and CTIME.match(entry["update_time"]), entry
    everything = (await ok(face, "/collection/status", {"collection_name": []}))["status"]
    assert name in [e["collection_name"] for e in everything]
    # GET: with a JSON body, and with query parameters (the list repeated, or one name).
    assert (await ok(face, "/collection/status", {"collection_name": [name]}, "GET"))["status"] == [entry]
    by_query = await face.get(PREFIX + "/collection/status", params={"collection_name": name})
    assert by_query.json()["status"] == [entry]
    await refused(face, "/collection/status", {"collection_name": [name, "no_such_col"]}, 1005, 404)
    await refused(face, "/collection/status", {"collection_name": ["bad name"]}, 1003, 400)

    assert await ok(face, "/clear/collection", {"collection_name": name}) == {
        "err_code": 0,
        "status": "Clear collection successfully!",
    }
    assert await ok(face, "/delete/collection", {"collection_name": name}, "GET") == {
        "err_code": 0,
        "status": "Delete collection successfully!",
    }
    await refused(face, "/collection/status", {"collection_name": [name]}, 1005, 404)
    for path in ("/delete/collection", "/clear/collection"):
        await refused(face, path, {"collection_name": name}, 1005, 404)


async def test_at_most_30_collections(face):
    existing = len((await ok(face, "/collection/status", {"collection_name": []}))["status"])
    made = [unique("quota") for _ in range(30 - existing)]
    try:
        for name in made:
            await ok(face, "/create/collection", {"collection_name": name})
        answer = await refused(face, "/create/collection", {"collection_name": unique("one_more")}, 1002, 400)
        assert answer["err_msg"] == "Collection quota exceeded"
    finally:
        for name in made:
            await call(face, "/delete/collection", {"collection_name": name})
    await ok(face, "/delete/collection", {"collection_name": await new_collection(face)})  # room again


async def test_insert_search_update_delete_with_real_faces(face, photos):
    name = await new_collection(face, "people")
    images = [
        photos["person_a_1.jpg"],
        photos["person_b_1.jpg"],
        photos["impostor_1.jpg"],
        photos["t1.jpg"],
        "###not base64###",
        photos["text"],
        photos["truncated"],
        photos["blank"],
        "A" * 14_000_000,
    ]
    targets = ["macron", "ardern", "obama", "group", "bad1", "bad2", "bad3", "bad4", "bad5"]
    answer = await ok(face, "/face/insert", {"collection_name": name, "face_image": images, "target_id": targets})
    assert answer["status"] == "Add vectors successfully!" and answer["success_num"] == 4
    assert answer["quota_exceeded_target_id"] == []
    invalid = answer["invalid"]
    assert invalid["invalid_num"] == 5
    assert invalid["message"]["invalid_index"] == [4, 5, 6, 7, 8]
    assert invalid["message"]["invalid_id"] == ["bad1", "bad2", "bad3", "bad4", "bad5"]
    assert invalid["message"]["invalid_reason"] == ["not base64", "not an image", "truncated", "no face", "too large"]
    [status] = (await ok(face, "/collection/status", {"collection_name": [name]}))["status"]
    assert status["feature_num"] == 4

    # Search finds the right person at rank 1, with photos taken years apart.
    for query, person in (("person_a_2.jpg", "macron"), ("person_b_2.jpg", "ardern"), ("impostor_1.jpg", "obama")):
        results = await search(face, name, photos[query], top_k=3)
        assert results[0]["result"] == person and results[0]["score"] > 0.5, (query, results)
        assert all(r["score"] < 0.5 for r in results[1:]), results
        assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert await search(face, name, photos["person_a_2.jpg"], top_k=1, method="GET") == (
        await search(face, name, photos["person_a_2.jpg"], top_k=1)
    )
    assert len(await search(face, name, photos["person_a_2.jpg"], top_k=500)) == 4  # capped, never an error
    stranger = await search(face, name, photos["impostor_2.jpg"], top_k=4)
    assert all(r["score"] < 0.5 for r in stranger)  # scores are calibrated: a stranger scores low

    # A second face of a target: the target is listed once, with its best score.
    await ok(
        face,
        "/face/insert",
        {"collection_name": name, "face_image": [photos["person_a_2.jpg"]], "target_id": ["macron"]},
    )
    results = await search(face, name, photos["person_a_1.jpg"], top_k=10)
    assert [r["result"] for r in results].count("macron") == 1 and results[0]["result"] == "macron"

    # Update replaces a target's faces at once; unknown target ids are target_invalid.
    answer = await ok(
        face,
        "/face/update",
        {
            "collection_name": name,
            "target_id": ["obama", "ghost"],
            "face_image": [photos["impostor_2.jpg"], photos["person_b_2.jpg"]],
        },
    )
    assert answer["status"] == "Update vectors successfully!" and answer["success_num"] == 1
    assert answer["target_invalid"] == ["ghost"] and answer["invalid"]["invalid_num"] == 0
    assert (await search(face, name, photos["impostor_2.jpg"], 1))[0]["result"] == "obama"
    assert all(r["result"] != "obama" or r["score"] < 0.5 for r in await search(face, name, photos["impostor_1.jpg"]))
    # A target is never emptied by an unusable photo.
    answer = await ok(
        face, "/face/update", {"collection_name": name, "target_id": ["ardern"], "face_image": [photos["blank"]]}
    )
    assert answer["success_num"] == 0 and answer["invalid"]["message"]["invalid_id"] == ["ardern"]
    assert (await search(face, name, photos["person_b_2.jpg"], 1))[0]["result"] == "ardern"

    # Delete removes a target from search at once.
    assert await ok(face, "/delete/id", {"collection_name": name, "target_id": "macron"}) == {
        "err_code": 0,
        "status": "Delete target_id successfully!",
    }
    assert "macron" not in [r["result"] for r in await search(face, name, photos["person_a_2.jpg"], 10)]
    answer = await refused(face, "/delete/id", {"collection_name": name, "target_id": "macron"}, 404, 404)
    assert "macron" in answer["err_msg"]
    by_query = await face.get(PREFIX + "/delete/id", params={"collection_name": name, "target_id": "group"})
    assert by_query.json() == {"err_code": 0, "status": "Delete target_id successfully!"}
    [status] = (await ok(face, "/collection/status", {"collection_name": [name]}))["status"]
    assert status["feature_num"] == 2 and status["update_time"] >= status["create_time"]

    await ok(face, "/clear/collection", {"collection_name": name})
    assert await search(face, name, photos["person_b_2.jpg"]) == []
    await ok(face, "/delete/collection", {"collection_name": name})


async def test_five_faces_per_target_id(face, photos):
    name = await new_collection(face, "quota")
    one = photos["person_b_1.jpg"]
    answer = await ok(
        face,
        "/face/insert",
        {"collection_name": name, "face_image": [one] * 3 + [photos["blank"]], "target_id": ["ardern"] * 4},
    )
    assert answer["success_num"] == 3 and answer["invalid"]["message"]["invalid_index"] == [3]
    # 3 stored + 3 more would be 6: that target stores none of them; the others in the batch are stored.
    answer = await ok(
        face,
        "/face/insert",
        {
            "collection_name": name,
            "face_image": [one] * 3 + [photos["impostor_1.jpg"]],
            "target_id": ["ardern"] * 3 + ["obama"],
        },
    )
    assert answer["quota_exceeded_target_id"] == ["ardern"] and answer["success_num"] == 1
    # Nothing left to store: 1007, with the same fields.
    answer = await refused(
        face, "/face/insert", {"collection_name": name, "face_image": [one] * 3, "target_id": ["ardern"] * 3}, 1007, 400
    )
    assert answer["err_msg"] == "Target_id quota exceeded" and answer["quota_exceeded_target_id"] == ["ardern"]
    assert answer["success_num"] == 0 and answer["invalid"]["invalid_num"] == 0
    answer = await refused(
        face, "/face/update", {"collection_name": name, "face_image": [one] * 6, "target_id": ["ardern"] * 6}, 1007, 400
    )
    assert answer["target_invalid"] == []
    [status] = (await ok(face, "/collection/status", {"collection_name": [name]}))["status"]
    assert status["feature_num"] == 4
    # Two up to five is fine.
    answer = await ok(
        face, "/face/insert", {"collection_name": name, "face_image": [one] * 2, "target_id": ["ardern"] * 2}
    )
    assert answer["success_num"] == 2
    await ok(face, "/delete/collection", {"collection_name": name})


async def test_compare_separates_same_from_different(face, photos):
    async def score(a: str, b: str, method: str = "POST") -> float:
        answer = await ok(face, "/face/compare", {"face_image1": photos[a], "face_image2": photos[b]}, method)
        assert set(answer) == {"err_code", "score"} and 0 <= answer["score"] <= 1
        return answer["score"]

    same = await asyncio.gather(
        score("person_a_1.jpg", "person_a_2.jpg"), score("person_b_1.jpg", "person_b_2.jpg", "GET")
    )
    different = await asyncio.gather(
        score("person_a_1.jpg", "person_b_1.jpg"),
        score("person_a_2.jpg", "impostor_1.jpg"),
        score("impostor_1.jpg", "impostor_2.jpg"),
        score("person_b_2.jpg", "impostor_2.jpg"),
    )
    assert min(same) > 0.5 > max(different), (same, different)

    answer = await refused(
        face, "/face/compare", {"face_image1": photos["person_a_1.jpg"], "face_image2": photos["blank"]}, 400, 400
    )
    assert "face_image2" in answer["err_msg"] and "no face" in answer["err_msg"]
    answer = await refused(
        face, "/face/compare", {"face_image1": photos["text"], "face_image2": photos["person_a_1.jpg"]}, 400, 400
    )
    assert "face_image1" in answer["err_msg"]
    await refused(face, "/face/compare", {"face_image1": photos["person_a_1.jpg"]}, 400, 400)


async def test_documented_errors_of_faces_and_search(face, photos):
    missing = unique("nope")
    faces = {"collection_name": missing, "face_image": [photos["person_a_1.jpg"]], "target_id": ["x"]}
    await refused(face, "/face/insert", faces, 1006, 404)
    await refused(face, "/face/update", faces, 1006, 404)
    await refused(
        face,
        "/face/search",
        {"collection_name": missing, "face_image": photos["person_a_1.jpg"], "top_k": 1},
        1005,
        404,
    )
    await refused(face, "/delete/id", {"collection_name": missing, "target_id": "x"}, 1005, 404)
    # The collection is looked up while the model runs; its error comes before the image's (search
    # raises for a bad image, so the order shows).
    await refused(
        face, "/face/search", {"collection_name": missing, "face_image": photos["blank"], "top_k": 1}, 1005, 404
    )
    await refused(face, "/face/insert", {**faces, "collection_name": "no good"}, 1003, 400)

    name = await new_collection(face, "errors")
    await ok(
        face,
        "/face/insert",
        {"collection_name": name, "face_image": [photos["person_a_1.jpg"]], "target_id": ["macron"]},
    )
    for body, words in [
        ({"collection_name": name, "face_image": [photos["person_a_1.jpg"]] * 2, "target_id": ["a"]}, "one to one"),
        ({"collection_name": name, "face_image": [], "target_id": []}, "empty"),
        ({"collection_name": name, "target_id": ["a"]}, "face_image"),
        ({"collection_name": name, "face_image": [photos["person_a_1.jpg"]], "target_id": [""]}, "target_id"),
    ]:
        answer = await refused(face, "/face/insert", body, 400, 400)
        assert words in answer["err_msg"], answer
    search_body = {"collection_name": name, "face_image": photos["person_a_2.jpg"]}
    for top_k in (0, -1, "many", 1.5, None):
        await refused(face, "/face/search", {**search_body, "top_k": top_k}, 400, 400)
    await refused(face, "/face/search", search_body, 400, 400)  # top_k is required
    answer = await refused(face, "/face/search", {**search_body, "face_image": photos["blank"], "top_k": 1}, 400, 400)
    assert "no face" in answer["err_msg"]
    response = await face.post(
        PREFIX + "/face/search", content=b"{not json", headers={"Content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["err_code"] == 400
    response = await call(face, "/face/search", [1, 2])  # type: ignore[arg-type]
    assert response.status_code == 400 and "object" in response.json()["err_msg"]
    await ok(face, "/delete/collection", {"collection_name": name})


async def test_a_collection_refuses_another_models_vectors(face, photos, db):
    name = await new_collection(face, "model")
    await ok(
        face,
        "/face/insert",
        {"collection_name": name, "face_image": [photos["person_a_1.jpg"]], "target_id": ["macron"]},
    )
    [[model, dim]] = await db.fetch("SELECT model, dim FROM face.collections WHERE kind = 'public' AND name = $1", name)
    assert (model, dim) == ("sface-2021dec", 128)
    # As if these vectors had been made by an InsightFace pack (LABELHIVE_FACE_MODEL=insightface:...).
    await db.execute(
        "UPDATE face.collections SET model = 'arcface-buffalo_l' WHERE kind = 'public' AND name = $1", name
    )
    try:
        for path, body in [
            ("/face/insert", {"collection_name": name, "face_image": [photos["person_b_1.jpg"]], "target_id": ["b"]}),
            ("/face/search", {"collection_name": name, "face_image": photos["person_a_2.jpg"], "top_k": 1}),
        ]:
            response = await call(face, path, body)
            assert response.status_code == 409 and response.json()["err_code"] == 409, response.text
            assert "arcface-buffalo_l" in response.json()["err_msg"]
        # Emptied, it takes the running model's vectors again.
        await ok(face, "/clear/collection", {"collection_name": name})
        await ok(
            face,
            "/face/insert",
            {"collection_name": name, "face_image": [photos["person_b_1.jpg"]], "target_id": ["ardern"]},
        )
        assert (await search(face, name, photos["person_b_2.jpg"], 1))[0]["result"] == "ardern"
        assert (
            await db.fetchval("SELECT model FROM face.collections WHERE kind = 'public' AND name = $1", name)
            == "sface-2021dec"
        )
    finally:
        await call(face, "/delete/collection", {"collection_name": name})


async def test_reserved_collections_are_invisible(face):
    # The face-login users live in "_users", which 002's naming rule cannot even spell.
    listed = [e["collection_name"] for e in (await ok(face, "/collection/status", {"collection_name": []}))["status"]]
    assert "_users" not in listed and not any(n.startswith("dataset-") for n in listed)
    await refused(face, "/collection/status", {"collection_name": ["_users"]}, 1003, 400)
    await refused(face, "/delete/collection", {"collection_name": "_users"}, 1003, 400)
    await refused(face, "/face/search", {"collection_name": "_users", "face_image": "x", "top_k": 1}, 1003, 400)


def _client_example(base_url: str, key: str, image_a: str, image_b: str, collection: str) -> list[dict]:
    """002's Python examples, verbatim but for the URL and the X-API-Key header."""
    import requests

    headers = {"Content-type": "application/json", "X-API-Key": key}
    answers = []
    url = base_url + "/api/v1/engine/recocomp/create/collection"
    resq = {"collection_name": collection}
    response = requests.post(url=url, data=json.dumps(resq), headers=headers)
    answers.append(json.loads(response.text))
    url = base_url + "/api/v1/engine/recocomp/face/insert"
    resq = {"collection_name": collection, "face_image": [image_a], "target_id": ["huge"]}
    response = requests.post(url=url, data=json.dumps(resq), headers=headers)
    answers.append(json.loads(response.text))
    url = base_url + "/api/v1/engine/recocomp/face/search"
    resq = {"collection_name": collection, "face_image": image_b, "top_k": 1}
    response = requests.post(url=url, data=json.dumps(resq), headers=headers)
    answers.append(json.loads(response.text))
    url = base_url + "/api/v1/engine/recocomp/face/compare"
    resq = {"face_image1": image_a, "face_image2": image_b}
    response = requests.post(url=url, data=json.dumps(resq), headers=headers)
    answers.append(json.loads(response.text))
    url = base_url + "/api/v1/engine/recocomp/version"
    response = requests.get(url=url, headers=headers)
    answers.append(json.loads(response.text))
    url = base_url + "/api/v1/engine/recocomp/delete/collection"
    resq = {"collection_name": collection}
    response = requests.post(url=url, data=json.dumps(resq), headers=headers)
    answers.append(json.loads(response.text))
    return answers


async def test_the_documented_client_code_works_unchanged(platform, api_key, photo_bytes):
    def b64(name: str) -> str:
        return base64.b64encode(photo_bytes[name]).decode("utf-8")

    created, inserted, found, compared, version, deleted = await asyncio.to_thread(
        _client_example, platform.gateway_url, api_key, b64("person_a_1.jpg"), b64("person_a_2.jpg"), unique("face_col")
    )
    assert created == {"err_code": 0, "status": "Create collection successfully!"}
    assert (
        inserted["err_code"] == 0 and inserted["success_num"] == 1 and inserted["status"] == "Add vectors successfully!"
    )
    assert found["err_code"] == 0 and found["status"][0]["result"] == "huge" and found["status"][0]["score"] > 0.5
    assert compared["err_code"] == 0 and compared["score"] > 0.5
    assert version["err_code"] == 0 and deleted["status"] == "Delete collection successfully!"


async def test_a_revoked_or_wrong_key_is_refused(platform):
    async with gateway_client(platform, headers={"X-API-Key": "lh_not_a_real_key"}) as stranger:
        response = await call(stranger, "/version", method="GET")
        assert response.status_code == 401 and response.json()["err_code"] == 401
