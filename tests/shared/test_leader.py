"""The leader lease (shared/leader.py) against the real Redis: never two leaders, and a dead leader's
lease taken over once it expires."""

from __future__ import annotations

import asyncio
import random
import secrets
import time

from shared.leader import LeaderLease
from shared.redis import Keys

TTL = 0.3


def _lease_key(backing) -> str:
    return Keys(backing.namespace).of("leader-test", secrets.token_hex(4))


async def test_two_contenders_never_both_lead(redis, backing):
    """Two contenders try all the time; each in turn stops renewing for longer than the TTL (a hung or
    dead leader). What each believed, from the moment Redis answered until its `held_until`, never
    overlaps what the other believed, and the lease changed hands every time its holder stopped."""
    key = _lease_key(backing)
    leases = {name: LeaderLease(redis, key, TTL) for name in ("a", "b")}
    spans: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    started = time.monotonic()
    # Each contender stops renewing for 0.5 s (> TTL) at these offsets: the other must take over.
    stalls = {"a": (0.5, 2.1), "b": (1.3, 2.9)}

    async def contend(name: str) -> None:
        lease = leases[name]
        pending = list(stalls[name])
        while (now := time.monotonic() - started) < 3.6:
            if pending and now >= pending[0]:
                pending.pop(0)
                await asyncio.sleep(0.5)
                continue
            if await lease.hold():
                spans[name].append((time.monotonic(), lease.held_until))
            await asyncio.sleep(random.uniform(0.005, 0.05))

    await asyncio.gather(contend("a"), contend("b"))

    assert spans["a"] and spans["b"]
    for a_from, a_until in spans["a"]:
        for b_from, b_until in spans["b"]:
            assert max(a_from, b_from) >= min(a_until, b_until), ((a_from, a_until), (b_from, b_until))
    # Who led, in time order: a stall of the leader hands the lease over (4 stalls, at least 3 changes:
    # a stall of the one not leading changes nothing).
    order = sorted([(start, name) for name, ss in spans.items() for start, _ in ss])
    changes = sum(1 for (_, x), (_, y) in zip(order, order[1:]) if x != y)
    assert changes >= 3, changes


async def test_a_dead_leaders_lease_is_taken_over(redis, backing):
    key = _lease_key(backing)
    first, second = LeaderLease(redis, key, TTL), LeaderLease(redis, key, TTL)
    assert await first.hold() and first.held
    assert not await second.hold() and not second.held
    await asyncio.sleep(TTL / 2)
    assert await first.hold()  # renewed: still the leader half a TTL later
    assert not await second.hold()

    await asyncio.sleep(TTL + 0.05)  # the first died without a word: its lease ran out
    assert not first.held
    assert await second.hold()
    assert not await first.hold()  # back from the dead, it cannot take or renew the new leader's lease
    await first.release()  # nor free it
    assert await redis.get(key) == second.token

    await second.release()  # a clean shutdown frees it at once
    assert await redis.get(key) is None
    assert await first.hold()
