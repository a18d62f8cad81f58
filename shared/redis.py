"""The Redis client every process uses, and the namespace that keeps deployments (and test runs)
sharing one server apart."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

# Connections one process keeps to Redis. A burst of requests beyond it waits for a free connection
# (up to POOL_WAIT_SECONDS) rather than failing: redis-py's default pool raises MaxConnectionsError
# at 100, which turned 100 simultaneous accepts into 503s.
MAX_CONNECTIONS = 100
POOL_WAIT_SECONDS = 5


def create_redis(url: str) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=5,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


class Keys:
    """Builds namespaced keys: `Keys("lh").of("sess", token_hash)` -> `lh:sess:<hash>`."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def of(self, *parts: object) -> str:
        return ":".join([self.namespace, *(str(p) for p in parts)])
