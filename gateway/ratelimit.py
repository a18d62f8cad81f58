"""Fixed-window rate limits in Redis on login, registration and code-sending endpoints, per client
address and per account (the user name or email in the request)."""

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
    account_fields: tuple[str, ...] = ()


LOGIN = Limit("login", per_ip=60, per_account=10, window_seconds=60,
              account_fields=("user_name", "username"))
REGISTER = Limit("register", per_ip=20, per_account=5, window_seconds=600,
                 account_fields=("user_name", "username", "email"))
CODE = Limit("code", per_ip=10, per_account=3, window_seconds=600, account_fields=("email",))
# A face login names no account (its body is a photo): limited per address only.
FACE_LOGIN = Limit("face-login", per_ip=30, per_account=0, window_seconds=60)

LIMITED_ROUTES: dict[tuple[str, str], Limit] = {
    ("POST", "/user/login"): LOGIN,
    ("GET", "/user/login"): LOGIN,
    ("POST", "/login"): LOGIN,
    ("POST", "/user/face_recognition_login"): FACE_LOGIN,
    ("POST", "/user/register"): REGISTER,
    ("POST", "/user/register-manager"): REGISTER,
    ("POST", "/api/users"): REGISTER,
    ("POST", "/user/get_verifycode"): CODE,
    ("POST", "/user/verifycode_current_email"): CODE,
}


def limit_for(method: str, path: str) -> Limit | None:
    return LIMITED_ROUTES.get((method.upper(), path.rstrip("/") or "/"))


def account_of(limit: Limit, body: bytes, query: dict[str, str], user_id: int | None) -> str | None:
    """The account a request is about: a field of its JSON body or query, else the caller."""
    data: Any = {}
    if body:
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
    for source in (data if isinstance(data, dict) else {}, query):
        for name in limit.account_fields:
            value = source.get(name)
            if isinstance(value, str) and value:
                return value.strip().lower()[:254]
    return f"user:{user_id}" if user_id is not None else None


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
