"""What 002's endpoints accept: the documented JSON types and nothing half understood, and an OpenAPI
schema that says so, one operation per method."""

from __future__ import annotations

from tests.conftest import unique
from tests.face_api.conftest import PREFIX, call, ok, refused


async def test_wrong_json_types_are_refused_with_the_field_named(face, photos):
    name = unique("types_")
    await ok(face, "/create/collection", {"collection_name": name})
    try:
        photo = photos["person_a_1.jpg"]
        for path in ("/face/insert", "/face/update"):
            for fields, words in [
                ({"face_image": "not a list", "target_id": ["a"]}, "face_image must be a list"),
                ({"face_image": photo, "target_id": ["a"]}, "face_image must be a list"),
                ({"face_image": {"0": photo}, "target_id": ["a"]}, "not an object"),
                ({"face_image": [photo, 42], "target_id": ["a", "b"]}, "face_image[1] must be a string"),
                ({"face_image": [photo], "target_id": "a"}, "target_id must be a list"),
                ({"face_image": [photo], "target_id": [7]}, "target_id[0] must be a string"),
                ({"face_image": [photo], "target_id": [None]}, "not null"),
            ]:
                answer = await refused(face, path, {"collection_name": name, **fields}, 400, 400)
                assert words in answer["err_msg"], (path, fields.keys(), answer)
        search = {"collection_name": name, "face_image": photo}
        for body, words in [
            ({**search, "top_k": "3"}, "top_k must be an integer, not a string"),
            ({**search, "top_k": [3]}, "top_k must be an integer, not a list"),
            ({**search, "face_image": [photo], "top_k": 1}, "face_image must be a base64 string"),
        ]:
            assert words in (await refused(face, "/face/search", body, 400, 400))["err_msg"]
        answer = await refused(face, "/face/compare", {"face_image1": photo, "face_image2": 3}, 400, 400)
        assert "face_image2 must be a base64 string" in answer["err_msg"]
        answer = await refused(face, "/collection/status", {"collection_name": {"name": name}}, 400, 400)
        assert "collection_name must be a list" in answer["err_msg"]
        await refused(face, "/collection/status", {"collection_name": name}, 400, 400)
        answer = await refused(face, "/delete/id", {"collection_name": name, "target_id": 5}, 400, 400)
        assert "target_id must be a string or a list of strings" in answer["err_msg"]
        response = await face.post(
            PREFIX + "/face/search",
            content=b'{"top_k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            headers={"Content-type": "application/json"},
        )
        assert response.status_code == 400 and response.json()["err_code"] == 400, response.text[:300]

        # A query parameter is text: there one name is a list of one, and a number is its digits.
        [entry] = (await face.get(PREFIX + "/collection/status", params={"collection_name": name})).json()["status"]
        assert entry["collection_name"] == name
        response = await face.get(
            PREFIX + "/face/search", params={"collection_name": name, "top_k": "2", "face_image": photos["blank"]}
        )
        assert response.status_code == 400 and "no face" in response.json()["err_msg"]  # top_k was fine
        response = await face.get(
            PREFIX + "/face/search", params={"collection_name": name, "top_k": "two", "face_image": photo}
        )
        assert response.status_code == 400 and "top_k" in response.json()["err_msg"]
        [entry] = (await ok(face, "/collection/status", {"collection_name": [name]}))["status"]
        assert entry["feature_num"] == 0  # nothing was stored by any of them
    finally:
        await call(face, "/delete/collection", {"collection_name": name})


async def test_the_schema_has_one_operation_per_method_with_its_request(client):
    spec = (await client.get("/openapi.json")).json()
    operations = {
        (path, method): operation
        for path, item in spec["paths"].items()
        if path.startswith(PREFIX)
        for method, operation in item.items()
    }
    assert len(operations) == 22  # 11 endpoints, GET and POST
    ids = [operation["operationId"] for operation in operations.values()]
    assert len(set(ids)) == len(ids), ids

    insert = operations[(PREFIX + "/face/insert", "post")]
    body = insert["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"collection_name", "face_image", "target_id"}
    assert schema["properties"]["face_image"]["type"] == "array"
    assert schema["properties"]["face_image"]["items"] == {"type": "string"}
    assert schema["properties"]["collection_name"]["pattern"]
    assert schema["properties"]["owner_id"]["type"] == "integer"

    search = operations[(PREFIX + "/face/search", "get")]
    assert search["requestBody"]["required"] is False
    assert {p["name"]: p["in"] for p in search["parameters"]} == {
        "collection_name": "query",
        "face_image": "query",
        "top_k": "query",
        "owner_id": "query",
    }
    assert (
        operations[(PREFIX + "/face/search", "post")]["requestBody"]["content"]["application/json"]["schema"][
            "properties"
        ]["top_k"]["type"]
        == "integer"
    )
    for path in ("/version", "/license"):
        assert "requestBody" not in operations[(PREFIX + path, "post")]
    for operation in operations.values():
        assert {"400", "401", "404"} <= set(operation["responses"]), operation["operationId"]
