"""Identity handed from the gateway to the services, and the signature services put on calls to
each other. Both are HMAC-SHA256 over a small JSON payload with the deployment's internal secret; a
service refuses an identity the gateway did not sign, and the gateway strips these headers from
clients."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from shared.access import Credential, credential_opens
from shared.errors import LabelhiveError, NoPermission, NotLoggedIn

IDENTITY_HEADER = "X-Labelhive-Identity"
CALLER_HEADER = "X-Labelhive-Caller"
# Headers a client may never set itself: the gateway removes them before forwarding.
INTERNAL_HEADERS = (IDENTITY_HEADER.lower(), CALLER_HEADER.lower())
MAX_AGE_SECONDS = 300
# A signed identity is reused for this long (the gateway) and a verified one remembered for as long
# as it is valid (the services): both are an HMAC and a JSON round trip saved on most requests.
RESIGN_AFTER_SECONDS = 5
_MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class Identity:
    user_id: int
    user_name: str
    role: str  # admin | demand | tag | agent
    via: str = Credential.SESSION  # what the caller presented: shared/access.py says what each opens
    credential: str = ""  # the session's (or key's) id, so logout can revoke exactly it


class InvalidSignature(Exception):
    pass


def _sign(payload: dict[str, Any], secret: str) -> str:
    body = base64.urlsafe_b64encode(orjson.dumps(payload)).decode()
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _verify(value: str, secret: str, max_age: int = MAX_AGE_SECONDS) -> dict[str, Any]:
    body, _, mac = value.partition(".")
    expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    if not secret or not hmac.compare_digest(mac, expected):
        raise InvalidSignature("bad signature")
    payload: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(body.encode()))
    if abs(time.time() - payload.get("iat", 0)) > max_age:
        raise InvalidSignature("expired")
    return payload


def sign_identity(identity: Identity, secret: str) -> str:
    return _sign({**asdict(identity), "iat": int(time.time())}, secret)


def verify_identity(value: str, secret: str) -> Identity:
    payload = _verify(value, secret)
    payload.pop("iat", None)
    return Identity(**payload)


class IdentitySigner:
    """Signs identities for the gateway, reusing a signature for `RESIGN_AFTER_SECONDS`: a service
    accepts it for `MAX_AGE_SECONDS`, so it is still fresh long after the gateway stops using it."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._signed: dict[Identity, tuple[float, str]] = {}

    def header(self, identity: Identity) -> str:
        now = time.monotonic()
        entry = self._signed.get(identity)
        if entry is not None and now - entry[0] < RESIGN_AFTER_SECONDS:
            return entry[1]
        if len(self._signed) >= _MAX_REMEMBERED:
            self._signed.clear()
        value = sign_identity(identity, self._secret)
        self._signed[identity] = (now, value)
        return value


# Identity headers this process verified (the secret and the exact signed value): the identity and
# when it was signed.
_verified: dict[tuple[str, str], tuple[Identity, int]] = {}


def _verified_identity(value: str, secret: str) -> Identity:
    """`verify_identity`, remembered per signed value until the signature is too old."""
    entry = _verified.get((secret, value))
    if entry is not None and abs(time.time() - entry[1]) <= MAX_AGE_SECONDS:
        return entry[0]
    payload = _verify(value, secret)
    issued = int(payload.pop("iat", 0))
    identity = Identity(**payload)
    if len(_verified) >= _MAX_REMEMBERED:
        _verified.clear()
    _verified[(secret, value)] = (identity, issued)
    return identity


def sign_caller(service: str, secret: str) -> str:
    return _sign({"svc": service, "iat": int(time.time())}, secret)


def verify_caller(value: str, secret: str) -> str:
    return str(_verify(value, secret)["svc"])


# FastAPI dependencies --------------------------------------------------------------------------


def _secret(request: Request) -> str:
    secret: str = request.app.state.settings.internal_secret
    return secret


# The dependencies are coroutines although they never wait: FastAPI runs a plain function in a
# worker thread, a hand-off that costs more than the check itself.


async def optional_identity(request: Request) -> Identity | None:
    value = request.headers.get(IDENTITY_HEADER)
    if not value:
        return None
    try:
        identity = _verified_identity(value, _secret(request))
    except (InvalidSignature, ValueError, TypeError, KeyError):
        # A forged or stale identity is treated as no identity at all.
        return None
    # The gateway applies the same rule; checking it here too keeps a key out of every route that
    # is not for it even if a call reaches the service another way.
    return identity if credential_opens(identity.via, request.url.path) else None


async def required_identity(request: Request) -> Identity:
    identity = await optional_identity(request)
    if identity is None:
        raise NotLoggedIn()
    return identity


def require_roles(*roles: str, error: type[LabelhiveError] = NoPermission) -> Callable[[Identity], Awaitable[Identity]]:
    """A dependency that admits only the given roles and raises `error`, the route's documented 'no
    permission', for any other. It runs before FastAPI validates the path and query parameters, so a
    caller of the wrong role gets `error` whatever ids it sent (CONTRACT.md: authorization before
    validation). FastAPI parses a declared JSON body before any dependency, so a route whose body must
    wait declares none and reads it with shared.edge.read_json_body."""

    async def dependency(identity: Annotated[Identity, Depends(required_identity)]) -> Identity:
        if identity.role not in roles:
            raise error()
        return identity

    return dependency


async def internal_caller(request: Request) -> str:
    """For internal endpoints: the calling service's name, or 403 if the call is not signed."""
    value = request.headers.get(CALLER_HEADER, "")
    try:
        return verify_caller(value, _secret(request))
    except (InvalidSignature, ValueError, TypeError, KeyError):
        raise NoPermission("internal endpoint: signed service calls only") from None


CurrentIdentity = Annotated[Identity, Depends(required_identity)]
MaybeIdentity = Annotated[Identity | None, Depends(optional_identity)]
InternalCaller = Annotated[str, Depends(internal_caller)]
