"""Every detect and stats route declares its answer (issue 14), and the declaration is true.

The scenario reaches a success answer on every JSON operation of document 004 through the gateway, with a
client that validates each 2xx JSON answer against the merged /openapi.json
(tests/openapi/declared_answers.py: a missing, mistyped or undeclared field fails); the result image and
the dashboard must answer the media type they declare. The last test asserts that no JSON operation was
left out, so a new route must be declared and exercised here. Run the module whole.
"""

from __future__ import annotations

import pytest_asyncio

from tests.conftest import unique
from tests.fixtures.steel import steel_photo
from tests.helpers import eventually, user_client
from tests.openapi.declared_answers import DeclaredAnswers


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def declared(merged_openapi: dict) -> DeclaredAnswers:
    return DeclaredAnswers(merged_openapi, ("detect", "stats"))


async def test_004_answers(platform, mailbox, merged_openapi: dict, declared: DeclaredAnswers) -> None:
    client, _ = await user_client(platform, mailbox)
    declared.watch(client)
    try:
        name = unique("declared") + ".jpg"
        r = await client.post("/api/detect", files=[("images", (name, steel_photo(7), "image/jpeg"))])
        assert r.status_code == 200 and r.json()[0]["name"] == name, r.text[:300]

        async def recorded() -> dict | None:
            r = await client.get("/api/data/search", params={"name": name})
            assert r.status_code == 200, r.text
            return r.json() if r.json()["total"] else None

        found = await eventually(recorded, timeout=20, interval=0.2, what=f"the record of {name}")
        for path in ("/api/data/getRecent", "/api/data/statByDate", "/api/data/getPaginated"):
            r = await client.get(path)
            assert r.status_code == 200 and r.json(), r.text[:300]

        for url, path in [
            (found["data"][0]["resFig"], "/api/data/figure/{fig_id}"),
            ("/api/data/dashboard", "/api/data/dashboard"),
        ]:
            r = await client.get(url)
            declared_types = set(merged_openapi["paths"][path]["get"]["responses"]["200"]["content"])
            assert r.status_code == 200 and r.headers["content-type"].split(";")[0] in declared_types, url
    finally:
        await client.aclose()


def test_every_004_json_operation_was_checked(declared: DeclaredAnswers) -> None:
    assert not declared.undeclared, f"operations without a declared answer: {declared.undeclared}"
    assert {op.service for op in declared.operations} == {"detect", "stats"}
    assert not declared.unseen(), f"declared answers no test reached: {declared.unseen()}"
