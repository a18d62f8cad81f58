"""Fixed-window rate limits in Redis on login, registration and e-mail code endpoints, per client
address and per account (the user name or e-mail the auth service will use, else the caller)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from shared.redis import Keys


@dataclass(frozen=True)
class Limit:
    name: str
    per_ip: int
    per_account: int
    window_seconds: int


LOGIN = Limit("login", per_ip=60, per_account=10, window_seconds=60)
REGISTER = Limit("register", per_ip=20, per_account=5, window_seconds=600)
CODE = Limit("code", per_ip=10, per_account=3, window_seconds=600)
# Guesses of an e-mail code: twice the auth service's cap of wrong guesses per code, so that a typo
# and a new code still fit.
CODE_CHECK = Limit("code-check", per_ip=20, per_account=10, window_seconds=600)
# A face login names no account (its body is a photo): limited per address only.
FACE_LOGIN = Limit("face-login", per_ip=30, per_account=0, window_seconds=60)


@dataclass(frozen=True)
class LimitedRoute:
    """A limit and where the auth service finds the account a request is about: the JSON body's
    fields, or the query's, in the order the service prefers them (the first present one is the
    account it uses, so a decoy in another field cannot move the count elsewhere), or the signed-in
    caller when the route is about the caller's own e-mail."""

    limit: Limit
    body_fields: tuple[str, ...] = ()
    query_fields: tuple[str, ...] = ()
    by_caller: bool = False


LIMITED_ROUTES: dict[tuple[str, str], LimitedRoute] = {
    ("POST", "/user/login"): LimitedRoute(LOGIN, body_fields=("user_name",)),
    ("GET", "/user/login"): LimitedRoute(LOGIN, query_fields=("username",)),
    # 000's Login000.name: `username`, else `user_name`.
    ("POST", "/login"): LimitedRoute(LOGIN, body_fields=("username", "user_name")),
    ("POST", "/user/face_recognition_login"): LimitedRoute(FACE_LOGIN),
    # 003's body when it has `user_name`, else 001's `username`.
    ("POST", "/user/register"): LimitedRoute(REGISTER, body_fields=("user_name", "username")),
    ("POST", "/user/register-manager"): LimitedRoute(REGISTER, body_fields=("username",)),
    ("POST", "/api/users"): LimitedRoute(REGISTER, body_fields=("user_name",)),
    ("POST", "/user/get_verifycode"): LimitedRoute(CODE, body_fields=("email",)),
    ("POST", "/user/verifycode_current_email"): LimitedRoute(CODE, by_caller=True),
    # The code checked is the one sent to `newemail`.
    ("POST", "/user/change_email"): LimitedRoute(CODE_CHECK, body_fields=("newemail",), by_caller=True),
}


def limited_route(method: str, path: str) -> LimitedRoute | None:
    return LIMITED_ROUTES.get((method.upper(), path.rstrip("/") or "/"))


def account_of(route: LimitedRoute, body: bytes, query: dict[str, str], user_id: int | None) -> str | None:
    """The account a request is about, read the way the auth service reads it."""
    data: Any = {}
    if route.body_fields and body:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            data = {}
    for source, names in ((data if isinstance(data, dict) else {}, route.body_fields), (query, route.query_fields)):
        for name in names:
            value = source.get(name)
            if isinstance(value, str) and value:
                return value.strip().lower()[:254]
    return f"user:{user_id}" if route.by_caller and user_id is not None else None


class RateLimiter:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def _hit(self, key: str, window: int) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            # The key names its window, so refreshing the expiry on every hit is harmless (and
            # `EXPIRE ... NX` needs Redis 7, while the embedded server is 6.2).
            pipe.expire(key, window)
            count, _ = await pipe.execute()
        return int(count)

    async def allow(self, limit: Limit, ip: str, account: str | None) -> bool:
        window = int(time.time()) // limit.window_seconds
        ip_count = await self._hit(self.keys.of("rl", limit.name, "ip", ip, window), limit.window_seconds)
        if ip_count > limit.per_ip:
            return False
        if account is None:
            return True
        account_key = self.keys.of("rl", limit.name, "acct", account, window)
        return await self._hit(account_key, limit.window_seconds) <= limit.per_account
