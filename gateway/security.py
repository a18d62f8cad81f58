"""Who is calling (session cookie, Bearer token or API key, resolved in Redis once) and the CSRF
check for cookie-authenticated writes from other sites."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

from shared.identity import Identity
from shared.sessions import API_KEY_HEADER, SESSION_COOKIE, SessionStore

CSRF_COOKIE = "csrftoken"
CSRF_HEADERS = ("x-csrftoken", "x-csrf-token", "x-xsrf-token")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def resolve_identity(request: Request, store: SessionStore) -> tuple[Identity | None, str]:
    """The caller's identity and how it was presented: "api_key", "bearer", "cookie" or ""."""
    if api_key := request.headers.get(API_KEY_HEADER):
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


def csrf_ok(request: Request, presented_by: str, secret: str, allowed_origins: list[str]) -> bool:
    """Double-submit check: a cross-site, cookie-authenticated write must echo the CSRF cookie
    (which only pages of an allowed origin can read) in a header, and the cookie must be ours."""
    if request.method not in UNSAFE_METHODS or presented_by != "cookie":
        return True
    origin = _origin(request)
    if origin is None or _allowed(origin, request, allowed_origins):
        return True
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = next((request.headers[h] for h in CSRF_HEADERS if h in request.headers), "")
    return bool(cookie) and hmac.compare_digest(cookie, header) and _valid_csrf_token(cookie, secret)
