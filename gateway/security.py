"""Who is calling (session cookie, Bearer token or API key, resolved in Redis once) and the CSRF
check for cookie-authenticated writes from other sites."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

from shared.access import Credential, credential_opens
from shared.identity import Identity
from shared.sessions import API_KEY_HEADER, SESSION_COOKIE, CredentialCache

CSRF_COOKIE = "csrftoken"
CSRF_HEADERS = ("x-csrftoken", "x-csrf-token", "x-xsrf-token")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# GET routes that may change state: 002 answers GET exactly as POST (its writes included), and
# 001's logout is a GET.
_STATE_CHANGING_GETS = re.compile(r"^/api/v1/engine/recocomp(/|$)|^/user/logout/?$")
# What a browser says of where a request comes from (Fetch Metadata); absent in other clients.
_CROSS_SITE_FETCH = frozenset({"cross-site", "same-site"})


async def resolve_identity(request: Request, store: CredentialCache) -> tuple[Identity | None, str]:
    """The caller's identity and how it was presented: "api_key", "bearer", "cookie" or "".

    An API key outside the routes it opens (shared/access.py) counts as no credential at all."""
    api_key = request.headers.get(API_KEY_HEADER)
    if api_key and credential_opens(Credential.API_KEY, request.scope["path"]):
        return await store.resolve_api_key(api_key), "api_key"
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await store.resolve_session(token.strip()), "bearer"
    if cookie := request.cookies.get(SESSION_COOKIE):
        return await store.resolve_session(cookie), "cookie"
    return None, ""


def new_csrf_token(secret: str) -> str:
    nonce = secrets.token_urlsafe(18)
    mac = hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{nonce}.{mac}"


def _valid_csrf_token(token: str, secret: str) -> bool:
    nonce, _, mac = token.partition(".")
    expected = hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()[:32]
    return bool(nonce) and hmac.compare_digest(mac, expected)


def _origin(request: Request) -> str | None:
    if origin := request.headers.get("origin"):
        return origin
    if referer := request.headers.get("referer"):
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}"
    return None


def _allowed(origin: str, request: Request, allowed_origins: list[str]) -> bool:
    if origin in allowed_origins:
        return True
    # Same origin: a page served through this gateway's own host name.
    host = request.headers.get("host", "")
    return bool(host) and urlsplit(origin).netloc == host


def changes_state(method: str, path: str) -> bool:
    return method in UNSAFE_METHODS or (method in ("GET", "HEAD") and _STATE_CHANGING_GETS.match(path) is not None)


def _cross_site(request: Request, allowed_origins: list[str]) -> bool:
    origin = _origin(request)
    if origin is not None:
        return not _allowed(origin, request, allowed_origins)
    # No Origin or Referer (a page can suppress the Referer): a browser still says where it comes from.
    return request.headers.get("sec-fetch-site", "") in _CROSS_SITE_FETCH


def csrf_ok(request: Request, presented_by: str, secret: str, allowed_origins: list[str]) -> bool:
    """Double-submit check: a cross-site, cookie-authenticated request that changes state, whatever
    its method, must echo the CSRF cookie (which only pages of an allowed origin can read) in a
    header, and the cookie must be ours. Clients that are not browsers send no Origin and pass."""
    if presented_by != "cookie" or not changes_state(request.method, request.scope["path"]):
        return True
    if not _cross_site(request, allowed_origins):
        return True
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = next((request.headers[h] for h in CSRF_HEADERS if h in request.headers), "")
    return bool(cookie) and hmac.compare_digest(cookie, header) and _valid_csrf_token(cookie, secret)
