"""Replicas of the face service keep their indexes equal through Redis pub/sub.

Scheme with N replicas: a broadcast, not a shared queue. Every replica holds every collection's index, so
every replica must see every change: each subscribes to the deployment's channel (a consumer group would
hand each change to one replica only). A write commits to PostgreSQL, applies its `Change` to this
replica's index, then publishes it; every replica applies what it hears (its own messages are recognised
and skipped). No leader is needed: applying is idempotent (a change at or below an index's version is
ignored, one that skips a version reloads the collection).

Pub/sub delivers at most once (nothing is kept for a replica that is disconnected or too slow), so the bus
never relies on it alone: whenever it (re)subscribes, and every `interval` seconds (also while Redis is out
of reach), it compares each index's version with PostgreSQL and reloads what differs
(`IndexRegistry.reconcile`). A lost message therefore costs a reload, never a wrong answer, and a search
that knows it is behind does not wait for the next check (index_registry.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from services.face.index_registry import Change, IndexRegistry
from shared.redis import Keys

log = logging.getLogger(__name__)


def channel_name(keys: Keys) -> str:
    return keys.of("face", "changes")


class ChangeBus:
    def __init__(self, redis: Redis, keys: Keys, registry: IndexRegistry, interval: float) -> None:
        self.redis = redis
        self.channel = channel_name(keys)
        self.registry = registry
        self.interval = interval
        self.origin = uuid.uuid4().hex
        self.subscribed = False
        self.received = 0
        self._task: asyncio.Task[None] | None = None

    async def commit(self, change: Change) -> None:
        """After a commit: this replica's index first (the caller answers only afterwards), then the others."""
        try:
            await self.registry.apply(change)
        except Exception:  # the data is committed: a reload will catch the index up
            log.exception(
                "applying change v%d of collection %d failed; reloading", change.version, change.collection_id
            )
            with contextlib.suppress(Exception):
                await self.registry.reload(change.collection_id)
        try:
            await self.redis.publish(self.channel, change.to_message(self.origin))
        except RedisError as exc:
            log.warning(
                "could not publish change v%d of collection %d (%s): other replicas catch up at their next check",
                change.version,
                change.collection_id,
                type(exc).__name__,
            )

    async def start(self) -> None:
        """Load every index (after subscribing, so that no change falls between), then listen."""
        pubsub = await self._subscribe()
        await self.registry.reconcile()
        self._task = asyncio.create_task(self._run(pubsub), name="face-change-bus")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _subscribe(self) -> PubSub | None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.subscribed = True
        except (RedisError, OSError) as exc:
            log.warning("could not subscribe to %s (%s); retrying", self.channel, type(exc).__name__)
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            self.subscribed = False
            return None
        return pubsub

    async def _run(self, pubsub: PubSub | None) -> None:
        next_check = time.monotonic() + self.interval
        try:
            while True:
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.interval
                    await self._check()
                if pubsub is None:
                    await asyncio.sleep(1.0)
                    pubsub = await self._subscribe()
                    if pubsub is not None:
                        await self._check()  # what was published while it was not listening
                    continue
                try:
                    message = await pubsub.get_message(timeout=min(1.0, self.interval))
                except (RedisError, OSError) as exc:
                    log.warning("change subscription lost (%s); resubscribing", type(exc).__name__)
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                    pubsub, self.subscribed = None, False
                    continue
                if message is not None and message.get("type") == "message":
                    await self._handle(message["data"])
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _handle(self, data: str) -> None:
        try:
            origin, change = Change.from_message(data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed change message: %s", exc)
            return
        if origin == self.origin:
            return
        self.received += 1
        try:
            await self.registry.apply(change)
        except Exception:
            log.exception("applying a published change failed; the next check reloads")

    async def _check(self) -> None:
        try:
            if touched := await self.registry.reconcile():
                log.info("version check reloaded %d collection(s)", touched)
        except Exception:  # the database may be down for a while: try again at the next check
            log.exception("version check failed")
