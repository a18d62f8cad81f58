"""Every face route declares its answer (issue 14), and the declaration is true.

The scenario reaches a success answer on every operation of document 002 (each endpoint by GET and by
POST) through the gateway, with a client that validates each 2xx answer against the merged /openapi.json
(tests/openapi/declared_answers.py: a missing, mistyped or undeclared field fails). The last test asserts
that none was left out, so a new route must be declared and exercised here. Run the module whole.
"""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from tests.conftest import unique
from tests.face_api.conftest import ok
from tests.helpers import user_client
from tests.openapi.declared_answers import DeclaredAnswers


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def declared(merged_openapi: dict) -> DeclaredAnswers:
    return DeclaredAnswers(merged_openapi, ("face",))


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_002_answers(face: httpx.AsyncClient, declared: DeclaredAnswers, photos: dict, method: str) -> None:
    declared.watch(face)
    assert (await ok(face, "/version", method=method))["version"]
    await ok(face, "/license", method=method)

    name = unique("declared")
    collection = {"collection_name": name}
    await ok(face, "/create/collection", collection, method)
    faces = {"face_image": [photos["person_a_1.jpg"], photos["blank"]], "target_id": ["ann", "wall"]}
    inserted = await ok(face, "/face/insert", {**collection, **faces}, method)
    assert inserted["success_num"] == 1 and inserted["invalid"]["invalid_num"] == 1, inserted
    faces = {"face_image": [photos["person_a_2.jpg"], photos["person_b_1.jpg"]], "target_id": ["ann", "nobody"]}
    updated = await ok(face, "/face/update", {**collection, **faces}, method)
    assert updated["target_invalid"] == ["nobody"], updated

    # The API key's creator is an admin: each entry also says whose collection it is.
    status = await ok(face, "/collection/status", {"collection_name": [name]}, method)
    assert [entry["feature_num"] for entry in status["status"]] == [1]
    query = {**collection, "face_image": photos["person_a_1.jpg"], "top_k": 3}
    assert (await ok(face, "/face/search", query, method))["status"][0]["result"] == "ann"
    pair = {"face_image1": photos["person_a_1.jpg"], "face_image2": photos["person_a_2.jpg"]}
    assert (await ok(face, "/face/compare", pair, method))["score"] > 0.5

    await ok(face, "/delete/id", {**collection, "target_id": "ann"}, method)
    await ok(face, "/clear/collection", collection, method)
    await ok(face, "/delete/collection", collection, method)


async def test_a_users_collection_status(platform, mailbox, declared: DeclaredAnswers) -> None:
    """Without the admin's `owner_id`: the entries of a user's own collections."""
    client, _ = await user_client(platform, mailbox, "demand")
    declared.watch(client)
    try:
        name = unique("mine")
        await ok(client, "/create/collection", {"collection_name": name})
        status = await ok(client, "/collection/status", {"collection_name": [name]})
        assert "owner_id" not in status["status"][0], status
        await ok(client, "/delete/collection", {"collection_name": name})
    finally:
        await client.aclose()


def test_every_face_operation_was_checked(declared: DeclaredAnswers) -> None:
    assert not declared.undeclared, f"operations without a declared answer: {declared.undeclared}"
    assert len(declared.operations) == 22  # 11 endpoints, GET and POST
    assert not declared.unseen(), f"declared answers no test reached: {declared.unseen()}"
