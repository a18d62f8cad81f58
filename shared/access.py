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
