"""The Redis client every process uses, and the namespace that keeps deployments (and test runs)
sharing one server apart."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_timeout=5)


class Keys:
    """Builds namespaced keys: `Keys("lh").of("sess", token_hash)` -> `lh:sess:<hash>`."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def of(self, *parts: object) -> str:
        return ":".join([self.namespace, *(str(p) for p in parts)])
