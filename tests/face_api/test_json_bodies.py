"""The face service reads its JSON bodies as every service does (shared.edge.read_json_object and
read_json_body): what is not a JSON object is a 400 in 002's envelope on document 002's routes, and in
003's on the internal ones, with the same words as elsewhere."""

from __future__ import annotations

import httpx
import pytest

from shared.identity import CALLER_HEADER, sign_caller
from tests.face_api.conftest import PREFIX


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid request: body is not valid JSON"),
        (b"\xff\xfe{}", "invalid request: body is not valid JSON"),
        (b"[1, 2]", "invalid request: body must be a JSON object"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_002_body_that_is_no_json_object(face: httpx.AsyncClient, body: bytes, message: str, method: str):
    response = await face.request(
        method, PREFIX + "/face/search", content=body, headers={"Content-type": "application/json"}
    )
    assert (response.status_code, response.json()) == (400, {"err_code": 400, "err_msg": message})


async def test_an_empty_002_body_takes_the_fields_from_the_query(face: httpx.AsyncClient):
    response = await face.get(PREFIX + "/create/collection", params={"collection_name": "bad name!"})
    assert response.status_code == 400 and response.json()["err_code"] == 1003, response.text


async def test_the_internal_routes_say_which_field_is_wrong(platform):
    headers = {CALLER_HEADER: sign_caller("auth", platform.secret)}
    async with httpx.AsyncClient(base_url=platform.service_url("face"), headers=headers) as face:
        response = await face.post("/internal/face-login/identify", json={"picture": "..."})
        assert (response.status_code, response.json()) == (
            400,
            {"code": 1005, "message": "invalid request: image: Field required", "data": {}},
        )
        response = await face.post("/internal/face-login/enroll", content=b"[]")
        assert response.status_code == 400
        assert response.json()["message"] == "invalid request: body must be a JSON object"
