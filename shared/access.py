"""What each kind of credential may open: the one rule, read by the gateway when it resolves a caller
and by every service when it accepts a signed identity (CONTRACT.md, "The AI services are not open").

- A session (cookie or `Authorization: Bearer`) opens every route; the route's own role check decides.
- An API key (`X-API-Key`) opens the AI routes and nothing else: document 002's face engine, 004's
  `/api/detect` and 004's data API. Anywhere else it counts as no credential at all (401), so a key
  can never act as its creator's account.
- A service signature (`X-Labelhive-Caller`) opens `/internal/*` only, and only between services:
  the gateway never routes `/internal/*` (gateway/routing.py).
"""

from __future__ import annotations

import re
from enum import StrEnum


class Credential(StrEnum):
    SESSION = "session"
    API_KEY = "api_key"


# The AI endpoints an API key opens (002, 004 detect, 004 data API), whatever the method.
_API_KEY_ROUTES = re.compile(r"^/api/(v1/engine/recocomp|detect|data)(/|$)")


def credential_opens(credential: str, path: str) -> bool:
    """Whether a caller who presented `credential` may be recognised on `path` at all."""
    if credential == Credential.SESSION:
        return True
    if credential == Credential.API_KEY:
        return _API_KEY_ROUTES.match(path) is not None
    return False


# Routes that serve a caller with no credential at all (the services read no identity, or answer an
# anonymous caller themselves): signing up and in, e-mail codes for registration, face login, the ad
# pool, the image and media beds' files, 004's dashboard page and the console's static pages. Every
# other route needs a credential, so the gateway refuses an anonymous request to it before reading
# its body. (methods, path regex); the gateway's own routes (/get_csrf_token, /healthz, /docs,
# /openapi.json, /metrics) never reach this table.
_PUBLIC_ROUTES: list[tuple[frozenset[str], re.Pattern[str]]] = [
    (frozenset({"POST"}), re.compile(r"^/(api/users|login)/?$")),
    (frozenset({"POST"}), re.compile(r"^/user/(register|register-manager|login|get_verifycode)/?$")),
    (frozenset({"POST"}), re.compile(r"^/user/face_recognition_login/?$")),
    (frozenset({"GET", "HEAD"}), re.compile(r"^/user/(login|logout|get-current)/?$")),
    (frozenset({"GET", "HEAD"}), re.compile(r"^/advertise/get_ad/?$")),
    (frozenset({"GET", "HEAD"}), re.compile(r"^/(picbed|video)/[^/]+$")),
    (frozenset({"GET", "HEAD"}), re.compile(r"^/api/data/dashboard/?$")),
    (frozenset({"GET", "HEAD"}), re.compile(r"^/(console(/|$)|$)")),
]


def is_public(method: str, path: str) -> bool:
    """Whether `method path` serves a caller who presented no credential."""
    method = method.upper()
    return any(method in methods and pattern.match(path) for methods, pattern in _PUBLIC_ROUTES)
