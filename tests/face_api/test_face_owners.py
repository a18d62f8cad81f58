"""Face collections have owners (CONTRACT.md): each user (or API key creator) has a namespace of 002
collections that nobody else can see, search, change or delete; admins reach every owner's."""

from __future__ import annotations

from tests.conftest import unique
from tests.face_api.conftest import call, ok, refused, search
from tests.helpers import admin_client, user_client


async def _listed(client, body=None) -> list[dict]:
    return (await ok(client, "/collection/status", body or {"collection_name": []}))["status"]


async def test_nobody_else_reaches_a_users_collection(platform, mailbox, photos):
    alice, _ = await user_client(platform, mailbox)
    mallory, _ = await user_client(platform, mailbox, "tag")
    try:
        private = unique("alice_")
        await ok(alice, "/create/collection", {"collection_name": private})
        await ok(
            alice,
            "/face/insert",
            {"collection_name": private, "face_image": [photos["person_a_1.jpg"]], "target_id": ["macron"]},
        )
        never_made = unique("nobody_")

        # Every way in answers exactly as for a collection that does not exist, by POST and by GET.
        for method in ("POST", "GET"):
            for path, body, code in [
                ("/collection/status", {"collection_name": [private]}, 1005),
                (
                    "/face/search",
                    {"collection_name": private, "face_image": photos["person_a_2.jpg"], "top_k": 1},
                    1005,
                ),
                (
                    "/face/insert",
                    {"collection_name": private, "face_image": [photos["person_b_1.jpg"]], "target_id": ["x"]},
                    1006,
                ),
                (
                    "/face/update",
                    {"collection_name": private, "face_image": [photos["person_b_1.jpg"]], "target_id": ["macron"]},
                    1006,
                ),
                ("/delete/id", {"collection_name": private, "target_id": "macron"}, 1005),
                ("/clear/collection", {"collection_name": private}, 1005),
                ("/delete/collection", {"collection_name": private}, 1005),
            ]:
                theirs = await refused(mallory, path, body, code, 404, method)
                body_of_nothing = {
                    **body,
                    "collection_name": [never_made] if path == "/collection/status" else never_made,
                }
                nothing = await refused(mallory, path, body_of_nothing, code, 404, method)
                assert theirs["err_msg"] == nothing["err_msg"]
                assert theirs["detail"].replace(private, "?") == nothing["detail"].replace(never_made, "?")
        assert private not in [e["collection_name"] for e in await _listed(mallory)]
        # Naming the owner does not help: only admins may name another owner.
        answer = await refused(mallory, "/delete/collection", {"collection_name": private, "owner_id": 1}, 400, 400)
        assert "owner_id" in answer["err_msg"]

        # Alice's collection is untouched, and still hers.
        [entry] = await _listed(alice, {"collection_name": [private]})
        assert entry["feature_num"] == 1 and "owner_id" not in entry
        assert (await search(alice, private, photos["person_a_2.jpg"], 1))[0]["result"] == "macron"
    finally:
        await alice.aclose()
        await mallory.aclose()


async def test_each_owner_has_their_own_names(platform, mailbox, photos, face):
    alice, _ = await user_client(platform, mailbox)
    bob, _ = await user_client(platform, mailbox)
    try:
        name = unique("COL")
        for client, person, photo in ((alice, "macron", "person_a_1.jpg"), (bob, "ardern", "person_b_1.jpg")):
            assert await ok(client, "/create/collection", {"collection_name": name}) == {
                "err_code": 0,
                "status": "Create collection successfully!",
            }
            await ok(
                client, "/face/insert", {"collection_name": name, "face_image": [photos[photo]], "target_id": [person]}
            )
        await refused(alice, "/create/collection", {"collection_name": name}, 1004, 409)
        # Each owner's search sees only their own faces, whoever is in the other one.
        assert [r["result"] for r in await search(alice, name, photos["person_b_2.jpg"], 5)] == ["macron"]
        assert [r["result"] for r in await search(bob, name, photos["person_a_2.jpg"], 5)] == ["ardern"]
        # An API key works in its creator's namespace (an admin's), and has no admin's reach.
        await refused(
            face,
            "/face/search",
            {"collection_name": name, "face_image": photos["person_a_2.jpg"], "top_k": 1},
            1005,
            404,
        )

        await ok(bob, "/clear/collection", {"collection_name": name})
        await ok(bob, "/delete/collection", {"collection_name": name})
        [entry] = await _listed(alice, {"collection_name": [name]})
        assert entry["feature_num"] == 1
        await ok(alice, "/delete/collection", {"collection_name": name})
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_admins_reach_every_owners_collections(platform, mailbox, photos, db):
    admin = await admin_client(platform)
    alice, alice_account = await user_client(platform, mailbox)
    bob, bob_account = await user_client(platform, mailbox)
    try:
        only_alice, shared_name = unique("only_"), unique("both_")
        for client, name in ((alice, only_alice), (alice, shared_name), (bob, shared_name)):
            await ok(client, "/create/collection", {"collection_name": name})
        await ok(
            alice,
            "/face/insert",
            {"collection_name": only_alice, "face_image": [photos["person_a_1.jpg"]], "target_id": ["macron"]},
        )

        # Listing everything, an admin sees every owner's collections, each with its owner.
        owners = {(e["collection_name"], e["owner_id"]) for e in await _listed(admin)}
        assert {
            (only_alice, alice_account.user_id),
            (shared_name, alice_account.user_id),
            (shared_name, bob_account.user_id),
        } <= owners
        mine = await _listed(admin, {"collection_name": [], "owner_id": bob_account.user_id})
        assert [(e["collection_name"], e["owner_id"]) for e in mine] == [(shared_name, bob_account.user_id)]

        # A name only one owner has needs no owner_id; a name several have does.
        assert (await search(admin, only_alice, photos["person_a_2.jpg"], 1))[0]["result"] == "macron"
        answer = await refused(admin, "/clear/collection", {"collection_name": shared_name}, 1005, 404)
        assert "owner_id" in answer["detail"]
        await ok(admin, "/delete/collection", {"collection_name": shared_name, "owner_id": bob_account.user_id})
        await refused(bob, "/collection/status", {"collection_name": [shared_name]}, 1005, 404)
        assert len(await _listed(alice, {"collection_name": [shared_name]})) == 1  # Alice's is still there
        # An admin may work in a user's namespace, and even make a collection there.
        made_for_bob = unique("for_bob_")
        await ok(admin, "/create/collection", {"collection_name": made_for_bob, "owner_id": bob_account.user_id})
        assert [e["collection_name"] for e in await _listed(bob)] == [made_for_bob]
        await ok(admin, "/delete/collection", {"collection_name": only_alice}, "GET")
        await refused(alice, "/collection/status", {"collection_name": [only_alice]}, 1005, 404)

        # Collections made before owners existed have none: only admins reach them, as owner 0.
        legacy = unique("legacy_")
        await db.execute("INSERT INTO face.collections (kind, name) VALUES ('public', $1)", legacy)
        await refused(alice, "/collection/status", {"collection_name": [legacy]}, 1005, 404)
        [entry] = await _listed(admin, {"collection_name": [legacy], "owner_id": 0})
        assert entry["owner_id"] == 0 and entry["feature_num"] == 0
        await refused(admin, "/create/collection", {"collection_name": unique("x"), "owner_id": 0}, 400, 400)
        await ok(admin, "/delete/collection", {"collection_name": legacy})
        assert await db.fetchval("SELECT count(*) FROM face.collections WHERE name = $1", legacy) == 0
    finally:
        for client in (admin, alice, bob):
            await client.aclose()


async def test_the_owner_parameter_is_checked(platform, mailbox):
    admin = await admin_client(platform)
    try:
        for bad in (-1, "me", 2**63, 1.5, True, [1]):
            answer = await refused(admin, "/collection/status", {"collection_name": [], "owner_id": bad}, 400, 400)
            assert "owner_id" in answer["err_msg"]
        response = await call(admin, "/collection/status", None, "GET", params={"owner_id": "99999999"})
        assert response.status_code == 200 and response.json()["status"] == []
    finally:
        await admin.aclose()
