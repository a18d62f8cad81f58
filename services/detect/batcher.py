"""Gathers single items submitted concurrently into batches for one blocking call, so that a GPU
runs full batches without making anyone wait for company: an item that arrives while the model is
idle runs at once, alone; items that arrive while a batch runs wait for it to end and then go
together (up to `max_batch`). Batches grow with the load, and a lone request pays no batching delay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(self, run_batch: Callable[[Sequence[T]], Iterable[R]], max_batch: int) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        # One worker thread: inference never runs on the event loop, and batches run one at a time.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _collect(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next item, whenever it comes, and whatever else is already waiting: never a wait for more."""
        batch = [await self._queue.get()]
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, items)
            except Exception as exc:  # the callers hear about it; the worker carries on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
