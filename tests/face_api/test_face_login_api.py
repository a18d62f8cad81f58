"""003's face binding and face login, through auth and the face service's internal API, with real photos."""

from __future__ import annotations

from tests.conftest import gateway_client
from tests.helpers import user_client


async def _face_login(platform, image: str):
    async with gateway_client(platform) as anonymous:
        response = await anonymous.post("/user/face_recognition_login", json={"image": image})
        profile = None
        if response.status_code == 200:
            user_id = response.json()["data"]["user_id"]
            profile = await anonymous.get(f"/user/userinfo/{user_id}")  # the new session works
        return response, profile


async def test_face_login_logs_in_the_right_user_and_refuses_strangers(platform, mailbox, photos, login_photos):
    alice_client, alice = await user_client(platform, mailbox)
    bob_client, bob = await user_client(platform, mailbox)
    carol_client, _ = await user_client(platform, mailbox, "tag")
    try:
        r = await alice_client.post("/user/face_recognition", json={"image": photos["person_a_1.jpg"]})
        assert r.status_code == 200 and r.json() == {"code": 0, "message": "success"}, r.text
        r = await bob_client.post("/user/face_recognition", json={"image": photos["person_b_1.jpg"]})
        assert r.status_code == 200, r.text

        # Alice's face, years later, is Alice's: nobody else may bind it.
        r = await carol_client.post("/user/face_recognition", json={"image": photos["person_a_2.jpg"]})
        assert r.status_code == 401 and r.json()["code"] == 63 and r.json()["message"] == "face registered"
        for unusable in ("blank", "text", "truncated"):
            r = await carol_client.post("/user/face_recognition", json={"image": photos[unusable]})
            assert r.status_code == 401 and r.json()["code"] == 60, (unusable, r.text)
        async with gateway_client(platform) as anonymous:
            r = await anonymous.post("/user/face_recognition", json={"image": photos["impostor_1.jpg"]})
            assert r.status_code == 401 and r.json()["code"] == 1001

        for photo, account in (("person_a_2.jpg", alice), ("person_b_2.jpg", bob)):
            # Full-size photos (hundreds of KB of base64): the gateway must not cap a face login's body.
            r, profile = await _face_login(platform, photos[photo])
            assert r.status_code == 200 and r.json()["code"] == 0, r.text
            data = r.json()["data"]
            assert data["user_id"] == account.user_id and data["user_name"] == account.user_name
            assert data["user_type"] == "demand" and "invite_code" in data
            assert profile is not None and profile.status_code == 200
            assert profile.json()["data"]["user_id"] == account.user_id

        # A stranger is refused (61), and so is an image without a face (60).
        for stranger in ("impostor_1.jpg", "impostor_2.jpg"):
            r, _ = await _face_login(platform, login_photos[stranger])
            assert r.status_code == 400 and r.json()["code"] == 61 and r.json()["message"] == "face unmatched"
        for unusable in ("blank", "text"):
            r, _ = await _face_login(platform, photos[unusable])
            assert r.status_code == 401 and r.json()["code"] == 60 and r.json()["message"] == "face unrecognized"

        # Binding again replaces the user's own face (it is not "another user's").
        r = await alice_client.post("/user/face_recognition", json={"image": photos["person_a_2.jpg"]})
        assert r.status_code == 200, r.text
        r, _ = await _face_login(platform, login_photos["person_a_1.jpg"])
        assert r.json()["data"]["user_id"] == alice.user_id
    finally:
        for client in (alice_client, bob_client, carol_client):
            await client.aclose()


async def test_internal_api_is_for_signed_services_only(platform, photos):
    import httpx

    async with httpx.AsyncClient(base_url=platform.service_url("face")) as direct:
        for path in ("/internal/face-login/identify", "/internal/face-login/enroll", "/internal/datasets/enroll"):
            r = await direct.post(path, json={"image": photos["person_a_1.jpg"], "user_id": 1})
            assert r.status_code in (400, 403) and r.json()["code"] == 1006, r.text
    async with gateway_client(platform) as client:  # and the gateway never routes it
        r = await client.post("/internal/face-login/identify", json={"image": photos["person_a_1.jpg"]})
        assert r.status_code == 404
