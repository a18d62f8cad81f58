"""The micro-batcher's batches: a lone item runs at once, alone; what arrives while a batch runs goes
into the next one together, never more than `max_batch`; a failed batch fails its callers only.

The model is stood in for by a function that blocks until the test opens its gate, so that what
"arrives while a batch runs" is decided by the test, not by the machine's speed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from services.detect.batcher import MicroBatcher


class GatedModel:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()

    def __call__(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        if "bad" in items:
            raise ValueError("the model failed")
        return [item.upper() for item in items]


async def _loop_turns(count: int = 10) -> None:
    """Lets the event loop run a few iterations; no wall-clock wait."""
    for _ in range(count):
        await asyncio.sleep(0)


@pytest.fixture
async def gated() -> GatedModel:
    return GatedModel()


async def _started(model: GatedModel, max_batch: int) -> MicroBatcher[str, str]:
    batcher: MicroBatcher[str, str] = MicroBatcher(model, max_batch)
    batcher.start()
    return batcher


async def test_a_lone_item_runs_at_once_and_later_arrivals_go_together(gated: GatedModel) -> None:
    batcher = await _started(gated, max_batch=16)
    try:
        first = asyncio.create_task(batcher.submit("a"))
        await _loop_turns()  # the model is idle: "a" is taken alone, without waiting for company
        later = [asyncio.create_task(batcher.submit(item)) for item in ("b", "c", "d")]
        await _loop_turns()
        gated.gate.set()
        assert await first == "A"
        assert await asyncio.gather(*later) == ["B", "C", "D"]
        assert gated.batches == [["a"], ["b", "c", "d"]]
    finally:
        gated.gate.set()
        await batcher.stop()


async def test_items_waiting_together_are_one_batch_of_at_most_max_batch(gated: GatedModel) -> None:
    batcher = await _started(gated, max_batch=3)
    try:
        first = asyncio.create_task(batcher.submit("a"))
        await _loop_turns()
        waiting = [asyncio.create_task(batcher.submit(f"x{n}")) for n in range(5)]
        await _loop_turns()
        gated.gate.set()
        await asyncio.gather(first, *waiting)
        assert gated.batches == [["a"], ["x0", "x1", "x2"], ["x3", "x4"]]
        assert [task.result() for task in waiting] == ["X0", "X1", "X2", "X3", "X4"]
    finally:
        gated.gate.set()
        await batcher.stop()


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_runs(gated: GatedModel) -> None:
    batcher = await _started(gated, max_batch=16)
    try:
        first = asyncio.create_task(batcher.submit("a"))
        await _loop_turns()
        doomed = [asyncio.create_task(batcher.submit(item)) for item in ("bad", "b")]
        await _loop_turns()
        gated.gate.set()
        assert await first == "A"
        for task in doomed:
            with pytest.raises(ValueError, match="the model failed"):
                await task
        assert await batcher.submit("c") == "C"
    finally:
        gated.gate.set()
        await batcher.stop()
