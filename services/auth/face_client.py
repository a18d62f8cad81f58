"""Auth's calls to the face service for 003's face binding and face login.

The face service's internal API (not routed by the gateway):
  POST /internal/face-login/enroll   {"user_id", "image"} -> 200 {"user_id"}
  POST /internal/face-login/identify {"image"}            -> 200 {"user_id"}
  failures: 422 {"reason": "no_face" | "unusable_face" | "already_registered" | "no_match" | "bad_image", "detail"}
Until that service runs, both calls answer 503 in 003's envelope.
"""

from __future__ import annotations

from services.auth.errors import FaceRegistered, FaceUnmatched, FaceUnrecognized
from shared.errors import InvalidRequest, ServiceUnavailable
from shared.http import ServiceClient

_REASONS = {
    "no_face": FaceUnrecognized,
    "unusable_face": FaceUnrecognized,  # no plausible face, or one that fails the quality gate
    "bad_image": FaceUnrecognized,
    "already_registered": FaceRegistered,
    "no_match": FaceUnmatched,
}


class FaceClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _call(self, path: str, body: dict[str, object]) -> int:
        response = await self.client.request("POST", path, json=body)
        if response.status_code == 200:
            return int(response.json()["user_id"])
        if response.status_code == 422:
            payload = response.json()
            error = _REASONS.get(payload.get("reason"))
            if error is not None:
                raise error(data=payload.get("detail", ""))
            raise InvalidRequest(str(payload.get("detail", "bad image")))
        raise ServiceUnavailable("face service unavailable", details=f"status {response.status_code}")

    async def enroll(self, user_id: int, image: str) -> None:
        await self._call("/internal/face-login/enroll", {"user_id": user_id, "image": image})

    async def identify(self, image: str) -> int:
        return await self._call("/internal/face-login/identify", {"image": image})
